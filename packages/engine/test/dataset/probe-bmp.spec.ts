import { describe, expect, it } from "vitest";
import { probeImage } from "@loraspec/engine/dataset/probe-image.js";

/** A valid 24-bit Windows bitmap (BITMAPINFOHEADER, bottom-up rows padded to 4 bytes), as Pillow and Paint write. */
function bmp(w: number, h: number): Buffer {
  const row = Math.ceil((w * 3) / 4) * 4;
  const b = Buffer.alloc(54 + row * h);
  b.write("BM", 0, "ascii");
  b.writeUInt32LE(b.length, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(w, 18);
  b.writeInt32LE(h, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(row * h, 34);
  for (let i = 54; i < b.length; i++) b[i] = (i * 37) & 0xff;
  return b;
}

// A dataset of BMPs was "not an image sharp can read (wrong extension, or an unsupported format)": the
// files are fine images, which sharp has no loader for. The message says what they are and what to do.
describe("a BMP in a dataset", () => {
  it("is named as a BMP sharp does not decode, with the conversion to do", async () => {
    const probed = await probeImage({ source: "b.bmp", bytes: bmp(300, 300), resolution: 256 });
    expect(probed.problems).toEqual([{ code: "not-an-image", severity: "skip", message: expect.stringMatching(/^a BMP image, which loraspec's image library \(sharp\) does not decode: convert it to PNG/) }]);
  });

  it("text named .bmp is still not an image", async () => {
    const probed = await probeImage({ source: "t.bmp", bytes: Buffer.from("hello"), resolution: 256 });
    expect(probed.problems.map((p) => [p.code, p.message])).toEqual([["not-an-image", "not an image sharp can read (wrong extension, or an unsupported format)"]]);
  });
});
