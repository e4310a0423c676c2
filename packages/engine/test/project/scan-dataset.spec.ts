import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterEach, describe, expect, it } from "vitest";
import { scanDataset } from "@loraspec/engine/dataset/scan-dataset.js";
import { isLoraspecError } from "@loraspec/core/errors.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function folder(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "loraspec-scan-"));
  dirs.push(d);
  return d;
}

const png = (w: number, h: number) => sharp({ create: { width: w, height: h, channels: 3, background: { r: 200, g: 50, b: 50 } } }).png().toBuffer();

describe("scanDataset", () => {
  it("reads sizes from headers, captions from sidecars, and collects unreadable files", async () => {
    const d = await folder();
    await writeFile(join(d, "a.png"), await png(64, 48));
    await writeFile(join(d, "a.txt"), "  txcl, a red square \n");
    await writeFile(join(d, "b.jpg"), await sharp({ create: { width: 40, height: 80, channels: 3, background: "#00f" } }).jpeg().toBuffer());
    await writeFile(join(d, "broken.png"), Buffer.from("not a png at all"));
    await writeFile(join(d, "notes.md"), "ignored");
    await mkdir(join(d, "10_sub"));
    await writeFile(join(d, "10_sub", "c.webp"), await sharp({ create: { width: 30, height: 30, channels: 3, background: "#0f0" } }).webp().toBuffer());
    const s = await scanDataset({ dir: d, displayPath: "./ds" });
    expect(s.images.map((i) => [i.file, i.width, i.height, i.format, i.caption])).toEqual([
      [join("10_sub", "c.webp"), 30, 30, "webp", null],
      ["a.png", 64, 48, "png", "txcl, a red square"],
      ["b.jpg", 40, 80, "jpeg", null],
    ]);
    expect(s.unreadable.map((u) => u.file)).toEqual(["broken.png"]);
    expect(s.path).toBe("./ds");
  });

  it("swaps width and height for EXIF orientations that rotate 90 degrees", async () => {
    const d = await folder();
    await writeFile(join(d, "r.jpg"), await sharp({ create: { width: 60, height: 20, channels: 3, background: "#888" } }).jpeg().withMetadata({ orientation: 6 }).toBuffer());
    const s = await scanDataset({ dir: d });
    expect([s.images[0]?.width, s.images[0]?.height]).toEqual([20, 60]);
  });

  it("names the contract and field when the folder is missing", async () => {
    const d = await folder();
    const error = await scanDataset({ dir: join(d, "nope"), displayPath: "./nope", contractFile: "lora.yaml" }).catch((e: unknown) => e);
    expect(isLoraspecError(error) && [error.code, error.file, error.field]).toEqual(["E_DATASET_NOT_FOUND", "lora.yaml", "dataset.path"]);
  });

  it("uses the contract's caption extension", async () => {
    const d = await folder();
    await writeFile(join(d, "a.png"), await png(16, 16));
    await writeFile(join(d, "a.caption"), "txcl");
    expect((await scanDataset({ dir: d, captionExtension: ".caption" })).images[0]?.caption).toBe("txcl");
  });
});
