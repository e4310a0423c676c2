import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { probeImage } from "@loraspec/engine/dataset/probe-image.js";
import { hammingDistance, nearEvidence } from "@loraspec/engine/dataset/dedupe.js";
import { NEAR_DUPLICATE } from "@loraspec/engine/dataset/prep-knowledge.js";
import { photoLike, pngHeaderOnly } from "./make-images.js";

const solid = (w: number, h: number) => sharp({ create: { width: w, height: h, channels: 3, background: "#c04020" } });

describe("probeImage", () => {
  it.each<[string, string, () => Promise<Buffer>, string[]]>([
    ["a JPEG at the resolution", "a.jpg", () => photoLike(300, 260, 1).jpeg().toBuffer(), []],
    ["an AVIF-coded .heic (sharp can)", "a.heic", () => solid(300, 300).heif({ compression: "av1" }).toBuffer(), []],
    [
      "an HEVC .heic (sharp cannot)",
      "b.heic",
      async () => {
        const b = await solid(300, 300).heif({ compression: "av1" }).toBuffer();
        b.write("hvc1", b.indexOf("av01"));
        return b;
      },
      ["unreadable"],
    ],
    ["an empty file", "e.png", async () => Buffer.alloc(0), ["unreadable"]],
    ["text named .png", "t.png", async () => Buffer.from("hello"), ["not-an-image"]],
    ["a 30000x30000 header", "h.png", async () => pngHeaderOnly(30000, 30000), ["too-large"]],
    ["a truncated JPEG", "c.jpg", async () => (await photoLike(300, 300, 2).jpeg().toBuffer()).subarray(0, 4000), ["truncated"]],
    ["below the resolution", "s.png", () => solid(200, 200).png().toBuffer(), ["upscaled"]],
    ["far below the resolution", "xs.png", () => solid(100, 100).png().toBuffer(), ["too-small"]],
    ["a 4:1 panorama", "p.png", () => solid(1200, 300).png().toBuffer(), ["extreme-aspect"]],
  ])("%s", async (_, source, make, codes) => {
    const probed = await probeImage({ source, bytes: await make(), resolution: 256 });
    expect(probed.problems.map((p) => p.code)).toEqual(codes);
  });

  it("applies EXIF orientation to the reported size", async () => {
    const bytes = await solid(400, 300).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    expect(await probeImage({ source: "r.jpg", bytes, resolution: 256 })).toMatchObject({ width: 300, height: 400, orientation: 6 });
  });

  it("signs near copies as near duplicates and different images not", async () => {
    const a = await probeImage({ source: "a", bytes: await photoLike(400, 300, 5).jpeg({ quality: 90 }).toBuffer(), resolution: 64 });
    const a2 = await probeImage({ source: "a2", bytes: await photoLike(400, 300, 5).resize(300, 225).jpeg({ quality: 60 }).toBuffer(), resolution: 64 });
    const b = await probeImage({ source: "b", bytes: await photoLike(400, 300, 6).jpeg().toBuffer(), resolution: 64 });
    const near = (x: typeof a, y: typeof a) => nearEvidence({ ...x, sha256: x.source }, { ...y, sha256: y.source }, NEAR_DUPLICATE.value);
    expect(near(a, a2)).toBeDefined();
    expect(near(a, b)).toBeUndefined();
  });
});

describe("hammingDistance", () => {
  it.each([
    ["0000000000000000", "0000000000000000", 0],
    ["ffffffffffffffff", "0000000000000000", 64],
    ["8000000000000001", "0000000000000000", 2],
    ["00000000ffffffff", "ffffffff00000000", 64],
    ["0f0f0f0f0f0f0f0f", "0f0f0f0f0f0f0f0e", 1],
  ])("%s vs %s -> %d", (a, b, expected) => {
    expect(hammingDistance(a, b)).toBe(expected);
  });
});

describe("probeImage: a file sharp cannot decode gets a whole reason", () => {
  // sharp's own text is cut off for some shapes ("Input buffer has corrupt header:" and nothing after).
  const png = () => solid(64, 64).png().toBuffer();
  it.each<[string, string, () => Promise<Buffer>, string, RegExp]>([
    ["a PNG cut inside its header", "a.png", async () => (await png()).subarray(0, 40), "truncated", /^cannot decode: the file's header is corrupt or cut short \(sharp: Input buffer has corrupt header\)$/],
    ["a bare PNG signature", "b.png", async () => (await png()).subarray(0, 8), "truncated", /^cannot decode: the file's header is corrupt or cut short \(sharp: Input buffer has corrupt header\)$/],
    ["a PNG without its last 20 bytes", "c.png", async () => { const b = await png(); return b.subarray(0, b.length - 20); }, "truncated", /^cannot decode: the png file is cut short \(sharp: .+\)$/],
    ["a JPEG cut after 30 bytes", "d.jpg", async () => (await solid(64, 64).jpeg().toBuffer()).subarray(0, 30), "truncated", /^cannot decode: the file's header is corrupt or cut short \(sharp: Input buffer has corrupt header: VipsJpeg: premature end of JPEG image\)$/],
    ["text named .jpg", "t.jpg", async () => Buffer.from("hello world\n"), "not-an-image", /^not an image sharp can read/],
    ["zero bytes", "z.png", async () => Buffer.alloc(0), "unreadable", /^cannot decode: the file is empty \(0 bytes\)$/],
  ])("%s", async (_, source, make, code, reason) => {
    const probed = await probeImage({ source, bytes: await make(), resolution: 32 });
    expect(probed.problems).toHaveLength(1);
    const p = probed.problems[0]!;
    expect(p.code).toBe(code);
    expect(p.message).toMatch(reason);
    // Complete: one line, nothing dangling after a colon.
    expect(p.message).not.toMatch(/\n|:\s*\)|:\s*$/);
  });
});
