"""Which style can the toy SDXL base's VAE draw? Candidate style concepts rendered over the same
scenes, encoded and decoded by models/toy-sdxl's VAE, and measured (bench/RESULTS.md, "A style the
toy VAE can draw"):

  roundtrip_mae  mean abs error of the styled image's round trip (per 255); the plain scenes' own
                 round trip is the floor
  kept           how much of the style's pixel change (styled - plain) the round trip keeps: the
                 projection of (rt(styled) - rt(plain)) on (styled - plain), 1.0 = all of it
  colours        share of round-tripped styled scenes whose colours the judge still reads exactly
                 (a style stacked with the character must leave its colour readable)
  background     share whose background the judge still reads right (a frame covers the edge)

`PYTHONPATH=worker python -m toyworld style-probe` prints the table. The chosen style (world.SHADED)
is drawn by world.render; the others only here. The edge styles (frames, edge darkening, vignette)
are measured further by frame_probe.py (bench/RESULTS.md, "A frame style on the toy SDXL base").
"""

from __future__ import annotations

import random

from . import world

PALETTES = {  # whole-scene colour grades (a palette the base never saw)
    "sepia": ((0.393, 0.769, 0.189), (0.349, 0.686, 0.168), (0.272, 0.534, 0.131)),
}


def _masks(scene):
    from PIL import Image, ImageDraw

    s = world.SIZE * world.SUPER
    out = []
    for o in scene.objects:
        col, row = world.POSITIONS[o.position][2:]
        cx, cy, r = (16 + 16 * col + o.dx) * world.SUPER, (16 + 16 * row + o.dy) * world.SUPER, world.RADIUS[o.size] * world.SUPER
        m = Image.new("L", (s, s), 0)
        d = ImageDraw.Draw(m)
        if o.shape == "circle":
            d.ellipse([cx - r * 0.9, cy - r * 0.9, cx + r * 0.9, cy + r * 0.9], fill=255)
        else:
            d.polygon(world._shape_points(o.shape, cx, cy, r, o.rotation), fill=255)
        out.append(m)
    return out


def _coverage(mask):
    import numpy as np
    from PIL import Image

    return np.asarray(mask.resize((world.SIZE, world.SIZE), Image.BOX), np.float32)[..., None] / 255


def outline(scene, width: int, colour=(15, 15, 20)):
    """A ring of `colour` `width` px wide around each object (an ink outline)."""
    import numpy as np
    from PIL import ImageFilter

    img = np.asarray(world.render(scene), np.float32)
    for m in _masks(scene):
        ring = np.clip(_coverage(m.filter(ImageFilter.MaxFilter(2 * width * world.SUPER + 1))) - _coverage(m), 0, 1)
        img = img * (1 - ring) + np.array(colour, np.float32) * ring
    return img


def hollow(scene, width: int):
    """Each object drawn as a `width` px line of its colour, the scene showing through."""
    import numpy as np
    from PIL import ImageFilter

    background = world._background(scene.background, scene.tint, random.Random(scene.seed * 7 + 1))
    img = np.asarray(world.render(scene), np.float32)
    for m in _masks(scene):
        inside = _coverage(m.filter(ImageFilter.MinFilter(2 * width * world.SUPER + 1)))
        img = img * (1 - inside) + background * inside
    return img


def grade(scene, kind: str):
    """A whole-scene colour grade."""
    import numpy as np

    img = np.asarray(world.render(scene), np.float32)
    lum = img @ np.array([0.299, 0.587, 0.114], np.float32)
    if kind == "sepia":
        return np.clip(img @ np.array(PALETTES["sepia"], np.float32).T, 0, 255)
    if kind == "duotone":
        t = (lum / 255)[..., None]
        return np.array((40, 10, 70), np.float32) * (1 - t) + np.array((255, 200, 90), np.float32) * t
    if kind == "grey":
        return np.repeat(lum[..., None], 3, -1)
    if kind == "warm tint":
        return np.clip(img * 0.7 + np.array((255, 150, 40), np.float32) * 0.3, 0, 255)
    raise ValueError(kind)


def frame(scene, width: int, colour=(15, 15, 20)):
    """A band of `colour` `width` px wide around the image's edge, drawn over the scene (a picture
    frame: it lives where the character is not)."""
    import numpy as np

    img = np.asarray(world.render(scene), np.float32).copy()
    band = edge_distance() < width
    img[band] = colour
    return img


def edge_darken(scene, width: int, factor: float = 0.45, soft: bool = False):
    """The scene darkened by `factor` within `width` px of the edge, its texture kept (`soft`: a
    vignette, the darkening fading linearly to none at `width`)."""
    import numpy as np

    img = np.asarray(world.render(scene), np.float32)
    d = edge_distance()
    amount = np.clip(1 - (d + 0.5) / width, 0, 1) if soft else (d < width).astype(np.float32)
    return (img * (1 - (1 - factor) * amount[..., None])).astype(np.float32)


def edge_distance(size: int = world.SIZE):
    """Each pixel's distance in whole pixels to the nearest image edge (0 on the outermost ring)."""
    import numpy as np

    i = np.arange(size)
    d = np.minimum(i, size - 1 - i)
    return np.minimum(d[:, None], d[None, :])


def shaded(scene):
    import numpy as np

    for o in scene.objects:
        o.fill = world.SHADED
    return np.asarray(world.render(scene), np.float32)


CANDIDATES = {
    "ink outline 2 px": lambda s: outline(s, 2),
    "ink outline 3 px": lambda s: outline(s, 3),
    "white outline 2 px": lambda s: outline(s, 2, (250, 250, 250)),
    "line art (hollow) 2 px": lambda s: hollow(s, 2),
    "line art (hollow) 3 px": lambda s: hollow(s, 3),
    "palette: sepia": lambda s: grade(s, "sepia"),
    "palette: duotone": lambda s: grade(s, "duotone"),
    "palette: grey": lambda s: grade(s, "grey"),
    "palette: warm tint": lambda s: grade(s, "warm tint"),
    "striped fill (the old txst)": None,  # set below: world's own striped fill
    "cel shading (world.SHADED, chosen)": lambda s: shaded(s),
    # issue 23, h/framestyle: styles that live at the image's edge, where the character is not
    "black frame 3 px": lambda s: frame(s, 3),
    "black frame 4 px": lambda s: frame(s, 4),
    "black frame 6 px": lambda s: frame(s, 6),
    "white frame 4 px": lambda s: frame(s, 4, (250, 250, 250)),
    "red frame 4 px": lambda s: frame(s, 4, world.COLOURS["red"]),
    "brown frame 4 px (off-palette)": lambda s: frame(s, 4, (95, 55, 25)),
    "edge darkened 4 px (x 0.45, texture kept)": lambda s: edge_darken(s, 4),
    "vignette 12 px (to x 0.45 at the edge)": lambda s: edge_darken(s, 12, soft=True),
}


def _striped(scene):
    import numpy as np

    for o in scene.objects:
        o.fill = "striped"
    return np.asarray(world.render(scene), np.float32)


CANDIDATES["striped fill (the old txst)"] = _striped


def _probe(base: str, judge_folder: str, count: int, start: int):
    """What both probes share: `count` seeded scenes (20% two objects), `base`'s VAE round trip (encode mean,
    decode; float images 0-255 in and out) and the judge's reads of float images."""
    import numpy as np
    import torch
    from diffusers import AutoencoderKL
    from PIL import Image

    from .judge import Judge

    vae = AutoencoderKL.from_pretrained(base, subfolder="vae", torch_dtype=torch.float32).eval()
    judge = Judge(judge_folder)
    scenes = [world.random_scene(start + i, two_objects=0.2) for i in range(count)]

    def rt(images):
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) / 127.5 - 1
        with torch.no_grad():
            y = vae.decode(vae.encode(x).latent_dist.mean).sample
        return ((y.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()

    def read(images) -> list[dict]:
        return judge.read([Image.fromarray(i.clip(0, 255).astype(np.uint8)) for i in images])

    return scenes, rt, read


def run(base: str, judge_folder: str, count: int = 48, start: int = 8_100_000) -> dict:
    import copy

    import numpy as np

    scenes, rt, read = _probe(base, judge_folder, count, start)

    def reads(images) -> dict:
        got = read(images)
        return {"colours": sum(set(r["colours"]) == {o.colour for o in s.objects} for s, r in zip(scenes, got)) / count,
                "background": sum(r["background"] == s.background for s, r in zip(scenes, got)) / count}

    plain = np.stack([np.asarray(world.render(s), np.float32) for s in scenes])
    plain_rt = rt(list(plain))
    rows = {"plain (the world as the base saw it)": {"roundtrip_mae": float(np.abs(plain_rt - plain).mean()), "kept": None,
                                                      **reads(list(plain_rt))}}
    for name, draw in CANDIDATES.items():
        styled = np.stack([draw(copy.deepcopy(s)) for s in scenes])
        styled_rt = rt(list(styled))
        change, change_rt = styled - plain, styled_rt - plain_rt
        rows[name] = {"roundtrip_mae": float(np.abs(styled_rt - styled).mean()),
                      "kept": float((change * change_rt).sum() / (change * change).sum()), **reads(list(styled_rt))}
    return rows


def table(rows: dict) -> str:
    lines = ["| candidate | round-trip error (/255) | style change kept | judge reads the colours after it | and the background |",
             "|---|---|---|---|---|"]
    for name, r in rows.items():
        kept = "-" if r["kept"] is None else f"{r['kept']:.2f}"
        lines.append(f"| {name} | {r['roundtrip_mae']:.1f} | {kept} | {r['colours']:.2f} | {r['background']:.2f} |")
    return "\n".join(lines)


def style_head_reads(base: str, judge_folder: str, count: int = 48, start: int = 8_100_000) -> dict:
    """Does `base`'s VAE (a toy SDXL or FLUX.1 folder) draw the cel style back? The same `count` scenes drawn
    plain and shaded (world.SHADED), round-tripped through the VAE (encode mean, decode; the latent shift and
    scale cancel), and the share the judge's style head reads as shaded, before and after the round trip
    (bench/RESULTS.md, "A baked style on the toy FLUX.1 base")."""
    import copy

    import numpy as np

    scenes, rt, read = _probe(base, judge_folder, count, start)

    def share(images) -> float:
        got = read(images)
        return sum(r.get("style") == world.STYLE["fill"] for r in got) / count

    plain = np.stack([np.asarray(world.render(s), np.float32) for s in scenes])
    styled = np.stack([shaded(copy.deepcopy(s)) for s in scenes])
    plain_rt, styled_rt = rt(list(plain)), rt(list(styled))
    return {"base": base, "count": count,
            "shaded_read": {"drawn": share(styled), "round_trip": share(styled_rt)},
            "plain_read_as_shaded": {"drawn": share(plain), "round_trip": share(plain_rt)},
            "roundtrip_mae": {"plain": float(np.abs(plain_rt - plain).mean()), "shaded": float(np.abs(styled_rt - styled).mean())}}
