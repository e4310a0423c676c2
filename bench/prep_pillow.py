"""The Pillow baseline for bench/prep-bench.ts: the same job as `loraspec prep` per image:
decode the JPEG, apply EXIF orientation, centre-crop to a square, Lanczos resize, write PNG.

Usage: python bench/prep_pillow.py OUT_DIR SIZE PROCS COMPRESS_LEVEL FILE... ; prints {"images", "seconds"}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from multiprocessing import Pool

from PIL import Image, ImageOps

Image.MAX_IMAGE_PIXELS = 268_402_689  # the same bomb limit sharp applies


def prep(args: tuple[str, str, int, int]) -> str:
    path, out_dir, size, level = args
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
        w, h = img.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.resize((size, size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side))
        out = os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0] + ".png")
        img.save(out, "PNG", compress_level=level)
    return out


def main() -> None:
    out_dir, size, procs, level, *files = sys.argv[1:]
    os.makedirs(out_dir, exist_ok=True)
    jobs = [(f, out_dir, int(size), int(level)) for f in files]
    t0 = time.perf_counter()
    if int(procs) > 1:
        with Pool(int(procs)) as pool:
            pool.map(prep, jobs, chunksize=1)
    else:
        for job in jobs:
            prep(job)
    print(json.dumps({"images": len(files), "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
