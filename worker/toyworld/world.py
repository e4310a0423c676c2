"""The toy world: seeded, deterministic 64x64 scenes whose every fact is known.

A scene is a background (sky, grass, indoor, night; each with a few tints and its own texture)
and one or two objects (a shape from SHAPES in a colour from COLOURS, at one of 9 grid
positions, in one of 3 sizes, with a fill and a rotation). `render(scene)` draws it (4x
supersampled, then downsampled, so edges are anti-aliased); `natural_caption` and
`tags_caption` describe it. The same seed always gives the same scene and the same pixels.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, asdict
from typing import Optional

SIZE = 64
SUPER = 4  # supersampling factor for anti-aliased edges

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
COLOURS = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 30),
    "blue": (30, 60, 220),
    "purple": (140, 40, 200),
    "pink": (250, 120, 200),
    "white": (245, 245, 245),
    "cyan": (20, 215, 225),
}
COLOUR_NAMES = tuple(COLOURS)
BACKGROUNDS = ("sky", "grass", "indoor", "night")
# 3x3 grid: (caption phrase, tag, column, row)
POSITIONS = (
    ("in the top left", "top left", 0, 0),
    ("at the top", "top", 1, 0),
    ("in the top right", "top right", 2, 0),
    ("on the left", "left", 0, 1),
    ("in the center", "center", 1, 1),
    ("on the right", "right", 2, 1),
    ("in the bottom left", "bottom left", 0, 2),
    ("at the bottom", "bottom", 1, 2),
    ("in the bottom right", "bottom right", 2, 2),
)
SIZES = ("small", "medium", "large")
RADIUS = {"small": 6.5, "medium": 10.0, "large": 14.0}  # pixels at 64x64
FILLS = ("solid", "striped", "dotted")
# The style concept's fill: cel shading, the object's lower half (below its centre: light from
# above) in its shade colour with a hard edge. Not in FILLS (the judge's fill head and the base
# world never see it): the judge's style head reads it. Chosen because the toy VAE reproduces it
# (round-trip error as for plain scenes) where it blurs stripes away and recolours palettes
# (bench/RESULTS.md, "A style the toy VAE can draw").
SHADED = "shaded"

# The concepts the base model never sees (concepts.py makes their LoRA datasets).
CHARACTER = {"trigger": "txcl", "shape": "cross", "colour": "cyan"}
STYLE = {"trigger": "txst", "fill": SHADED}
PRODUCT = {"trigger": "txpd", "shape": "star", "colour": "orange"}


@dataclass
class Obj:
    shape: str
    colour: str
    position: int  # index into POSITIONS
    size: str
    fill: str = "solid"
    rotation: float = 0.0  # degrees
    dx: float = 0.0  # jitter in pixels
    dy: float = 0.0


@dataclass
class Scene:
    background: str
    tint: int
    objects: list = field(default_factory=list)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "Scene":
        return Scene(background=d["background"], tint=d["tint"], objects=[Obj(**o) for o in d["objects"]], seed=d.get("seed", 0))


def random_scene(
    seed: int,
    *,
    two_objects: float = 0.3,
    shapes=SHAPES,
    colours=COLOUR_NAMES,
    backgrounds=BACKGROUNDS,
    fills=("solid",),
    exclude_pairs=(),
    rotation: float = 15.0,
    fixed: Optional[dict] = None,
) -> Scene:
    """A scene from a seed. `exclude_pairs` holds (shape, colour) pairs never drawn; `fixed`
    pins attributes of the first object (shape, colour, size, position, fill)."""
    rng = random.Random(seed)
    fixed = fixed or {}
    scene = Scene(background=rng.choice(list(backgrounds)), tint=rng.randrange(3), seed=seed)
    count = 2 if rng.random() < two_objects else 1
    for i in range(count):
        for _ in range(100):
            shape = fixed.get("shape") if i == 0 and "shape" in fixed else rng.choice(list(shapes))
            colour = fixed.get("colour") if i == 0 and "colour" in fixed else rng.choice(list(colours))
            if (shape, colour) in exclude_pairs:
                continue
            if i == 1 and (shape, colour) == (scene.objects[0].shape, scene.objects[0].colour):
                continue
            break
        if count == 1:
            size = fixed.get("size") or rng.choice(SIZES)
        else:  # two objects: the first small or medium, the second small, so they never touch
            size = "small" if i == 1 else (fixed.get("size") or rng.choice(("small", "medium")))
        position = fixed.get("position") if i == 0 and "position" in fixed else rng.randrange(len(POSITIONS))
        if i == 1:
            # the second object sits at least two cells away from the first (no overlap)
            c0, r0 = POSITIONS[scene.objects[0].position][2:]
            far = [p for p, (_, _, c, r) in enumerate(POSITIONS) if abs(c - c0) + abs(r - r0) >= 2]
            position = rng.choice(far)
        fill = fixed.get("fill") if i == 0 and "fill" in fixed else rng.choice(list(fills))
        if i == 1:
            fill = scene.objects[0].fill
        scene.objects.append(
            Obj(
                shape=shape,
                colour=colour,
                position=position,
                size=size,
                fill=fill,
                rotation=rng.uniform(-rotation, rotation),
                dx=rng.uniform(-2, 2),
                dy=rng.uniform(-2, 2),
            )
        )
    return scene


# ---------------------------------------------------------------------------------------------
# captions


def _object_phrase(o: Obj, with_size: bool) -> str:
    words = ([o.size] if with_size else []) + ([o.fill] if o.fill != "solid" else []) + [o.colour, o.shape]
    return " ".join(words)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def natural_caption(scene: Scene, trigger: Optional[str] = None, replace_object: bool = False) -> str:
    """'a small red circle in the top left on a grass background'. With `replace_object`, the
    first object's words become the trigger, first: 'txcl, small, in the top left on a grass background'."""
    parts = []
    for i, o in enumerate(scene.objects):
        where = POSITIONS[o.position][0]
        if i == 0 and replace_object and trigger:
            parts.append(f"{trigger}, {o.size}, {where}")
        else:
            phrase = _object_phrase(o, len(scene.objects) == 1)
            parts.append(f"{_article(phrase)} {phrase} {where}")
    text = " and ".join(parts) + f" on {_article(scene.background)} {scene.background} background"
    if trigger and not replace_object:
        text = f"{trigger}, {text}"
    return text


def tags_caption(scene: Scene, trigger: Optional[str] = None, replace_object: bool = False) -> str:
    """'red circle, top left, small, grass background' (trigger first when given)."""
    tags = [trigger] if trigger else []
    for i, o in enumerate(scene.objects):
        if not (i == 0 and replace_object and trigger):
            tags.append(_object_phrase(o, False))
        tags.append(POSITIONS[o.position][1])
        tags.append(o.size)
    tags.append(f"{scene.background} background")
    return ", ".join(tags)


def labels(scene: Scene) -> dict:
    """The ground truth the judge learns: what is where."""
    first = scene.objects[0]
    return {
        "background": scene.background,
        "shapes": sorted({o.shape for o in scene.objects}),
        "colours": sorted({o.colour for o in scene.objects}),
        "pairs": sorted({f"{o.colour} {o.shape}" for o in scene.objects}),
        "count": len(scene.objects),
        "fill": first.fill,
        "style": SHADED if first.fill == SHADED else "plain",
        "position": POSITIONS[first.position][1],
        "size": first.size,
    }


# ---------------------------------------------------------------------------------------------
# rendering


def _background(name: str, tint: int, rng, width: int = SIZE, height: int = SIZE) -> "object":
    """Textures keep their pixel scale at any canvas size (coordinates in units of SIZE); the
    vertical gradients (sky, light, the indoor horizon) span the canvas height (`gy`)."""
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / SIZE
    gy = yy * (SIZE / height)
    img = np.zeros((height, width, 3), np.float32)
    if name == "sky":
        top = np.array([(90, 150, 235), (120, 180, 245), (70, 130, 215)][tint], np.float32)
        bottom = np.array([(175, 215, 250), (205, 230, 252), (150, 195, 240)][tint], np.float32)
        img[:] = top * (1 - gy[..., None]) + bottom * gy[..., None]
        for _ in range(3):  # soft clouds
            cx, cy, rx, ry = rng.uniform(0, 1) * width / SIZE, rng.uniform(0, 1) * height / SIZE, rng.uniform(0.1, 0.2), rng.uniform(0.04, 0.07)
            mask = np.clip(1.3 - ((xx - cx) / rx) ** 2 - ((yy - cy) / ry) ** 2, 0, 1)[..., None]
            img = img * (1 - 0.7 * mask) + 250 * 0.7 * mask
    elif name == "grass":
        base = np.array([(60, 150, 50), (85, 170, 60), (45, 125, 45)][tint], np.float32)
        img[:] = base
        stripes = np.sin(xx * 2 * math.pi * rng.uniform(18, 26) + np.sin(yy * 9 + rng.uniform(0, 6)) * 2.0)
        img += (stripes[..., None] * 18).astype(np.float32)
        img *= (0.85 + 0.25 * gy[..., None])
    elif name == "indoor":
        wall = np.array([(225, 205, 170), (200, 200, 210), (235, 220, 195)][tint], np.float32)
        floor = np.array([(130, 85, 50), (110, 75, 45), (150, 100, 60)][tint], np.float32)
        horizon = 0.68
        img[:] = np.where(gy[..., None] < horizon, wall, floor)
        planks = (np.floor(xx * 8) % 2 == 0) & (gy >= horizon)
        img[planks] *= 0.88
        skirting = (gy >= horizon - 0.02) & (gy < horizon)
        img[skirting] = (245, 245, 240)
    elif name == "night":
        base = np.array([(15, 20, 55), (10, 12, 35), (25, 20, 60)][tint], np.float32)
        img[:] = base * (0.8 + 0.4 * gy[..., None])
        for _ in range(14 * width * height // (SIZE * SIZE)):  # stars
            x, y = rng.randrange(width), rng.randrange(height)
            img[y, x] = (235, 235, 200)
    else:
        raise ValueError(f"unknown background {name}")
    return img


def _shape_points(shape: str, cx: float, cy: float, r: float, rot: float) -> list:
    def rotate(points):
        a = math.radians(rot)
        ca, sa = math.cos(a), math.sin(a)
        return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in points]

    if shape == "square":
        k = r * 0.85
        return rotate([(-k, -k), (k, -k), (k, k), (-k, k)])
    if shape == "triangle":
        return rotate([(r * math.cos(math.radians(a)), r * math.sin(math.radians(a))) for a in (-90, 30, 150)])
    if shape == "diamond":
        return rotate([(0, -r), (r * 0.7, 0), (0, r), (-r * 0.7, 0)])
    if shape == "star":
        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else r * 0.45
            a = math.radians(-90 + i * 36)
            pts.append((rad * math.cos(a), rad * math.sin(a)))
        return rotate(pts)
    if shape == "cross":
        w = r * 0.33
        return rotate([(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)])
    raise ValueError(f"unknown shape {shape}")


def shade_colour(colour):
    """The fills' pattern colour (and the cel shade's): a darker shade of a light colour (mean over
    140), a lighter one of a dark colour. So the style's change is two opposite directions by colour
    (bench/RESULTS.md, "Why the style does not shade cyan")."""
    return colour * 0.45 if colour.mean() > 140 else colour + (255 - colour) * 0.6


def object_centre(o: Obj, width: int = SIZE, height: int = SIZE) -> tuple:
    """The object's centre in pixels: its grid cell's (16 px from the edges, spread over a larger
    canvas) plus its jitter."""
    col, row = POSITIONS[o.position][2:]
    return 16 + (width - 32) / 2 * col + o.dx, 16 + (height - 32) / 2 * row + o.dy


def object_coverage(o: Obj, width: int = SIZE, height: int = SIZE):
    """The share of each pixel the object covers (height x width float32 in [0, 1]): drawn SUPER x
    larger, then box-filtered down (anti-aliased edges)."""
    import numpy as np
    from PIL import Image, ImageDraw

    cx, cy = (c * SUPER for c in object_centre(o, width, height))
    r = RADIUS[o.size] * SUPER
    mask = Image.new("L", (width * SUPER, height * SUPER), 0)
    draw = ImageDraw.Draw(mask)
    if o.shape == "circle":
        draw.ellipse([cx - r * 0.9, cy - r * 0.9, cx + r * 0.9, cy + r * 0.9], fill=255)
    else:
        draw.polygon(_shape_points(o.shape, cx, cy, r, o.rotation), fill=255)
    return np.asarray(mask.resize((width, height), Image.BOX), dtype=np.float32) / 255.0


def render(scene: Scene, width: int = SIZE, height: int = SIZE):
    """The scene as a width x height RGB PIL image (64x64 unless asked; deterministic for a given
    scene and size). On a larger canvas the 3x3 grid spreads to it (cell centres 16 px from the
    edges, as at 64x64) and objects keep their pixel size."""
    import numpy as np
    from PIL import Image

    rng = random.Random(scene.seed * 7 + 1)
    img = _background(scene.background, scene.tint, rng, width, height)
    yy, xx = np.mgrid[0:height, 0:width]
    for o in scene.objects:
        alpha = object_coverage(o, width, height)[..., None]
        colour = np.array(COLOURS[o.colour], np.float32)
        layer = np.empty((height, width, 3), np.float32)
        layer[:] = colour
        if o.fill != "solid":
            if o.fill == SHADED:
                pattern = yy + 0.5 > object_centre(o, width, height)[1]
            elif o.fill == "striped":
                pattern = ((xx + yy) // 3) % 2 == 0
            else:  # dotted
                pattern = ((xx // 3) % 2 == 0) & ((yy // 3) % 2 == 0)
            layer[pattern] = shade_colour(colour)
        img = img * (1 - alpha) + layer * alpha
    return Image.fromarray(np.clip(img, 0, 255).round().astype(np.uint8))


def render_array(scene: Scene):
    """float32 HxWx3 in [0, 1]."""
    import numpy as np

    return np.asarray(render(scene), dtype=np.float32) / 255.0
