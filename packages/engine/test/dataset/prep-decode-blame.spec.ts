import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { prepareDataset, type PrepSummary } from "@loraspec/engine/dataset/prepare-dataset.js";
import { decodeProblem } from "@loraspec/engine/dataset/probe-image.js";
import { scanDataset } from "@loraspec/engine/dataset/scan-dataset.js";
import { photoLike } from "./make-images.js";

/** A decode error that is not about the file (every image fails alike) ends the run; no file is called damaged. */
const fault = vi.hoisted(() => ({ message: undefined as string | undefined, writeFails: undefined as string | undefined }));
vi.mock("@loraspec/engine/fs/atomic-write.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("@loraspec/engine/fs/atomic-write.js")>();
  return {
    atomicWrite: async (path: string, data: Parameters<typeof real.atomicWrite>[1]) => {
      if (fault.writeFails && path.endsWith(fault.writeFails)) throw Object.assign(new Error(`ENOSPC: no space left on device, write '${path}'`), { code: "ENOSPC" });
      // The others are slow enough to still be in flight when one fails.
      if (fault.writeFails) await new Promise((r) => setTimeout(r, 150));
      return real.atomicWrite(path, data);
    },
  };
});
vi.mock("@loraspec/engine/dataset/process-image.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("@loraspec/engine/dataset/process-image.js")>();
  return {
    ...real,
    processImage: async (params: Parameters<typeof real.processImage>[0]) => {
      if (fault.message) throw new Error(fault.message);
      return real.processImage(params);
    },
  };
});

let root: string;
let dataset: string;
let out: string;

async function files(dir: string): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const bytes = await readFile(join(dir, name)).catch(() => undefined);
    found[name] = bytes ? createHash("sha256").update(bytes).digest("hex") : "dir";
  }
  return found;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-prep-blame-"));
  dataset = join(root, "photos");
  out = join(root, "prepared");
  await mkdir(dataset);
  for (let i = 0; i < 3; i++) await photoLike(200, 160, 40 + i).png().toFile(join(dataset, `p${i}.png`));
  await collectEvents(prepareDataset({ datasetDir: dataset, outDir: out, resolution: 128 }));
  await writeFile(join(out, "p0.txt"), "txcl, hand written");
});
afterAll(async () => {
  fault.message = undefined;
  await rm(root, { recursive: true, force: true });
});

describe("decode errors that are not about the file", () => {
  it("every image failing as a known-good one does: E_INTERNAL naming the settings, no 'damaged' row, the prepared folder untouched", async () => {
    const before = await files(out);
    fault.message = "vips_colourspace: no known route from 'srgb' to 'nowhere'";
    try {
      const events: unknown[] = [];
      const run = (async () => {
        for await (const e of prepareDataset({ datasetDir: dataset, outDir: out, resolution: 128, format: "jpeg" })) events.push(e);
      })();
      await expect(run).rejects.toMatchObject({ code: "E_INTERNAL", field: "settings", message: expect.stringContaining("no dataset file is to blame") });
      expect(JSON.stringify(events)).not.toMatch(/damaged/);
    } finally {
      fault.message = undefined;
    }
    expect(await files(out)).toEqual(before);
  });

  it("one file sharp cannot decode while the settings decode a known-good image: that file is skipped as damaged, the rest prepared", async () => {
    await writeFile(join(dataset, "bad.png"), Buffer.concat([await readFile(join(dataset, "p0.png")).then((b) => b.subarray(0, 60)), Buffer.alloc(4000, 7), Buffer.from("IEND")]));
    try {
      const events = await collectEvents(prepareDataset({ datasetDir: dataset, outDir: out, resolution: 128 }));
      const summary = (events.find((e) => e.type === "done") as unknown as { result: PrepSummary }).result;
      expect(summary.outputs).toBe(3);
      expect(summary.skipped.map((s) => s.source)).toEqual(["bad.png"]);
      // Blamed at the full decode (the header read fine), after the known-good control decoded.
      expect(summary.skipped[0]!.message).toMatch(/damaged|cut short/);
    } finally {
      await rm(join(dataset, "bad.png"));
    }
  });

  it("an output write that fails (disk full) while others are in flight: E_DISK_FULL naming the output, nothing left behind", async () => {
    const before = await files(out);
    fault.writeFails = "p1.jpg";
    try {
      await expect(collectEvents(prepareDataset({ datasetDir: dataset, outDir: out, resolution: 128, format: "jpeg", concurrency: 3 }))).rejects.toMatchObject({
        code: "E_DISK_FULL",
        file: expect.stringMatching(/p1\.jpg$/),
      });
    } finally {
      fault.writeFails = undefined;
    }
    // Past the others' writes: none of them may land in the prepared folder after the error.
    await new Promise((r) => setTimeout(r, 400));
    expect(await files(out)).toEqual(before);
  });

  it("a read that fails for the machine (too many open files) is E_IO, not an unreadable file; a permission error stays the file's", async () => {
    const fail = (code: string) => async (path: string) => {
      if (path.endsWith("p1.png")) throw Object.assign(new Error(`${code}: failed, open '${path}'`), { code, path });
      return readFile(path);
    };
    await expect(scanDataset({ dir: dataset, readFile: fail("EMFILE") })).rejects.toMatchObject({ code: "E_IO", file: expect.stringMatching(/p1\.png$/) });
    const denied = await scanDataset({ dir: dataset, readFile: fail("EACCES") });
    expect(denied.skipped).toEqual([expect.objectContaining({ file: "p1.png", code: "unreadable", message: expect.stringMatching(/permission denied/) })]);
  });

  it("sharp's pixel limit met at decode is the image's size, not damage", () => {
    expect(decodeProblem(new Uint8Array(8), "png", new Error("Input image exceeds pixel limit"))).toMatchObject({ code: "too-large", message: expect.not.stringMatching(/damaged/) });
  });
});
