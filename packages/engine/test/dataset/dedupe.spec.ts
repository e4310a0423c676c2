import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { dedupeImages, type DedupeImage } from "@loraspec/engine/dataset/dedupe.js";
import { signatureFromBytes, type ImageSignature } from "@loraspec/engine/dataset/image-signature.js";
import { photoLike } from "./make-images.js";

const root = fileURLToPath(new URL("../../../..", import.meta.url));
const sign = (bytes: Buffer) => signatureFromBytes(bytes, { maxPixels: 1e8 });
const image = (source: string, signature: ImageSignature | undefined, sha256 = source, width = 256): DedupeImage => ({ source, sha256, width, height: width, size: 1000, signature });

describe("dedupeImages", () => {
  it("keeps all 20 images of examples/character (same character, other poses and scenes)", async () => {
    const dir = join(root, "examples", "character", "dataset");
    const files = (await readdir(dir)).filter((f) => f.endsWith(".png"));
    expect(files).toHaveLength(20);
    const images = await Promise.all(files.map(async (f) => image(f, await sign(await readFile(join(dir, f))))));
    expect(dedupeImages({ images })).toEqual([]);
  });

  it("never merges flat or transparent images unless they are exact copies", async () => {
    const flat = (background: string | object, channels: 3 | 4 = 3) => sharp({ create: { width: 128, height: 128, channels, background } }).png().toBuffer();
    const white = await flat("#ffffff");
    const images = [
      image("white.png", await sign(white), "w"),
      image("white-copy.png", await sign(white), "w"),
      image("white2.png", await sign(await sharp(white).jpeg().toBuffer())),
      image("transparent.png", await sign(await flat({ r: 0, g: 0, b: 0, alpha: 0 }, 4))),
      image("grey.png", await sign(await flat("#808080"))),
    ];
    const clusters = dedupeImages({ images });
    expect(clusters).toEqual([{ kind: "exact", keep: "white.png", drop: ["white-copy.png"], evidence: { "white-copy.png": undefined } }]);
  });

  it("decides pairwise: no chain links two images that are not themselves duplicates", () => {
    // Hand-made signatures: a~b and b~c by hash and pixels, a and c far apart.
    const thumb = (v: number) => Buffer.alloc(32 * 32 * 3, v).toString("base64");
    const sig = (phash: string, t: string): ImageSignature => ({ phash, contrast: 50, thumb: t });
    const stripes = (shift: number) => {
      const b = Buffer.alloc(32 * 32 * 3);
      for (let i = 0; i < b.length; i++) b[i] = (Math.floor(i / 3) % 32 < 16 + shift ? 40 : 200);
      return b.toString("base64");
    };
    const images = [
      image("a.png", sig("0000000000000000", stripes(0)), "a", 300),
      image("b.png", sig("00000000000000ff", stripes(0)), "b", 200),
      image("c.png", sig("000000000000ffff", stripes(8)), "c", 100),
    ];
    void thumb;
    const clusters = dedupeImages({ images, thresholds: { phashMax: 8 } });
    // a keeps b (distance 8); c is 16 from a: kept, even though it is 8 from b.
    expect(clusters.map((c) => [c.keep, c.drop])).toEqual([["a.png", ["b.png"]]]);
  });

  it("finds a re-encode and a resize of a photo, and keeps the pinned one", async () => {
    const base = await photoLike(320, 240, 9).png().toBuffer();
    const other = await photoLike(320, 240, 10).png().toBuffer();
    const images = [
      image("a.png", await sign(base), "a", 320),
      image("a-q40.jpg", await sign(await sharp(base).jpeg({ quality: 40 }).toBuffer()), "b", 320),
      image("a-small.jpg", await sign(await sharp(base).resize(160).jpeg().toBuffer()), "c", 160),
      image("b.png", await sign(other), "e", 320),
    ];
    const clusters = dedupeImages({ images, pinned: ["a-q40.jpg"] });
    expect(clusters.map((c) => [c.kind, c.keep, c.drop])).toEqual([["near", "a-q40.jpg", ["a-small.jpg", "a.png"]]]);
    expect(Object.values(clusters[0]!.evidence).every((e) => e && e.pixel >= 0 && e.phash >= 0)).toBe(true);
  });

  it("an embedding below the threshold vetoes a hash-and-pixel match", async () => {
    const base = await photoLike(320, 240, 11).png().toBuffer();
    const images = [image("a.png", await sign(base), "a"), image("b.jpg", await sign(await sharp(base).jpeg({ quality: 50 }).toBuffer()), "b")];
    expect(dedupeImages({ images })).toHaveLength(1);
    const embeddings = new Map([["a.png", [1, 0]], ["b.jpg", [0.6, 0.8]]]);
    expect(dedupeImages({ images, embeddings })).toEqual([]);
    expect(dedupeImages({ images, embeddings: new Map([["a.png", [1, 0]], ["b.jpg", [0.99, 0.05]]]) })).toHaveLength(1);
  });
});
