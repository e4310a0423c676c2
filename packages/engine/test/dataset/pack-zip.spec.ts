import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import yauzl from "yauzl";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packZip } from "@loraspec/engine/dataset/pack-zip.js";

let root: string;

function zipEntries(path: string): Promise<Array<{ name: string; text?: string; mtime: string; size: number }>> {
  return new Promise((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true }, (error, zip) => {
      if (error || !zip) return reject(error);
      const out: Array<{ name: string; text?: string; mtime: string; size: number }> = [];
      zip.on("entry", (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (err, stream) => {
          if (err || !stream) return reject(err);
          const chunks: Buffer[] = [];
          stream.on("data", (c: Buffer) => chunks.push(c));
          stream.on("end", () => {
            const data = Buffer.concat(chunks);
            out.push({ name: entry.fileName, text: entry.fileName.endsWith(".txt") ? data.toString("utf8") : undefined, mtime: entry.getLastModDate().toISOString().slice(0, 4), size: data.length });
            zip.readEntry();
          });
        });
      });
      zip.on("end", () => resolve(out));
      zip.on("error", reject);
      zip.readEntry();
    });
  });
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-zip-"));
  const dir = join(root, "prepared");
  await mkdir(join(dir, "sub"), { recursive: true });
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#abcdef" } }).png().toBuffer();
  for (const name of ["b.png", "a.png", "sub/c.png", "we:ird?.png", ".hidden.png"]) await writeFile(join(dir, name), png);
  await writeFile(join(dir, "a.txt"), "txcl, a caption é");
  await writeFile(join(dir, "sub/c.txt"), "txcl, in a sub-folder");
  await writeFile(join(dir, "notes.md"), "not packed");
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe("packZip", () => {
  it("packs images and same-name captions flat, sorted, with no path escaping the root", async () => {
    const out = join(root, "data.zip");
    const summary = await packZip({ dir: join(root, "prepared"), out });
    expect(summary.entries).toEqual(["a.png", "a.txt", "b.png", "sub__c.png", "sub__c.txt", "we_ird_.png"]);
    expect(summary.missingCaptions).toEqual(["b.png", "we:ird?.png"]);
    const entries = await zipEntries(out);
    expect(entries.map((e) => e.name)).toEqual(summary.entries);
    expect(entries.find((e) => e.name === "a.txt")?.text).toBe("txcl, a caption é");
    for (const e of entries) {
      expect(e.name.includes("/") || e.name.includes("\\") || e.name.startsWith(".")).toBe(false);
      expect(e.mtime).toBe("2000");
    }
  });

  it("is deterministic: the same folder gives the same bytes", async () => {
    await packZip({ dir: join(root, "prepared"), out: join(root, "one.zip") });
    await packZip({ dir: join(root, "prepared"), out: join(root, "two.zip") });
    expect(Buffer.compare(await readFile(join(root, "one.zip")), await readFile(join(root, "two.zip")))).toBe(0);
  });

  it("can refuse images without captions", async () => {
    await expect(packZip({ dir: join(root, "prepared"), out: join(root, "x.zip"), missingCaption: "error" })).rejects.toMatchObject({ code: "E_DATASET_EMPTY" });
  });
});
