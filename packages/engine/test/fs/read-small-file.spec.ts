import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoraspecError } from "@loraspec/core/errors.js";
import { collectEvents } from "@loraspec/core/events.js";
import { loadContract } from "@loraspec/engine/contract/load-contract.js";
import { readCaptionFile } from "@loraspec/engine/dataset/caption-sidecar.js";
import { datasetFindings } from "@loraspec/engine/dataset/dataset-findings.js";
import { prepareDataset } from "@loraspec/engine/dataset/prepare-dataset.js";
import { scanDataset } from "@loraspec/engine/dataset/scan-dataset.js";
import { FILE_LIMITS } from "@loraspec/engine/fs/file-limits.js";
import { readSmallFile } from "@loraspec/engine/fs/read-small-file.js";
import { photoLike } from "../dataset/make-images.js";

/**
 * A small file loraspec parses whole (a contract, a caption, a model's config.json) may be anything in
 * a downloaded project: a multi-GB file there is refused after a stat, with its name and a code, never
 * read. Sparse files (truncate) cost no disk; reading one whole would cost its size in memory.
 */
const GB3 = 3 * 1024 ** 3;
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-small-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function sparse(name: string, size: number, head = "version: 1\n"): Promise<string> {
  const path = join(tmp, name);
  await writeFile(path, head);
  await truncate(path, size);
  return path;
}

describe("readSmallFile", () => {
  it.each(Object.entries(FILE_LIMITS))("%s: every limit says what it is for and where it comes from", (_, limit) => {
    expect(limit.bytes).toBeGreaterThan(1024);
    expect(limit.source.length).toBeGreaterThan(20);
    expect(limit.asOf).toMatch(/^\d{4}-\d{2}/);
  });

  it.each([
    ["3 GB (past readFile's own 2 GiB refusal)", GB3],
    ["one byte over the limit", FILE_LIMITS.contract.bytes + 1],
  ])("%s: E_FILE_TOO_LARGE naming the file, unread", async (_, size) => {
    const path = await sparse(`big-${size}.yaml`, size);
    const error = await readSmallFile({ file: path, limit: FILE_LIMITS.contract, shown: "big.yaml" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoraspecError);
    expect(error).toMatchObject({ code: "E_FILE_TOO_LARGE", file: "big.yaml" });
    expect((error as Error).message).toMatch(/^big\.yaml is [\d.]+ (GiB|MiB), more than a contract can be \(at most 1\.0 MiB\); it was not read$/);
  });

  it("a file of exactly the limit is read whole", async () => {
    const path = await sparse("edge.yaml", FILE_LIMITS.contract.bytes);
    expect((await readSmallFile({ file: path, limit: FILE_LIMITS.contract })).byteLength).toBe(FILE_LIMITS.contract.bytes);
  });

  it("a folder is EISDIR and a pipe ENOTREG, never read (a FIFO would hang a plain read)", async () => {
    await mkdir(join(tmp, "folder.yaml"));
    await expect(readSmallFile({ file: join(tmp, "folder.yaml"), limit: FILE_LIMITS.contract })).rejects.toMatchObject({ code: "EISDIR" });
    expect(spawnSync("mkfifo", [join(tmp, "pipe.yaml")]).status).toBe(0);
    await expect(readSmallFile({ file: join(tmp, "pipe.yaml"), limit: FILE_LIMITS.contract })).rejects.toMatchObject({ code: "ENOTREG" });
  });
});

describe("the readers built on it", () => {
  it("loadContract (every CLI command's contract): a 3 GB lora.yaml is E_FILE_TOO_LARGE naming it as given", async () => {
    await sparse("lora.yaml", GB3);
    await expect(loadContract({ cwd: tmp })).rejects.toMatchObject({ code: "E_FILE_TOO_LARGE", file: "lora.yaml" });
    await expect(loadContract({ cwd: tmp, path: "pipe.yaml" })).rejects.toMatchObject({ code: "E_CONTRACT_NOT_FOUND", file: "pipe.yaml" });
  });

  it("readCaptionFile (check, prep, caption --fix): a 3 GB caption is a caption-too-large problem, not an error", async () => {
    const read = await readCaptionFile(await sparse("huge.txt", GB3, "txcl, a caption"));
    expect(read?.problem).toEqual({ code: "caption-too-large", message: "3.0 GiB, more than a caption can be (at most 64.0 KiB): left out unread" });
    expect(await readCaptionFile(join(tmp, "pipe.yaml"))).toBeUndefined();
  });
});

describe("a 3 GB caption sidecar in a dataset", () => {
  it("check's scan and prep both leave it out as caption-too-large, naming it; the image trains uncaptioned; nothing of the user's changes", async () => {
    const ds = join(tmp, "dataset");
    await mkdir(ds);
    await writeFile(join(ds, "a.png"), await photoLike(300, 300, 1).png().toBuffer());
    await writeFile(join(ds, "a.txt"), "txcl, a caption");
    await truncate(join(ds, "a.txt"), GB3);
    const scan = await scanDataset({ dir: ds, resolution: 256 });
    expect(scan.captionProblems).toEqual([{ file: "a.txt", code: "caption-too-large", message: expect.stringContaining("3.0 GiB") }]);
    expect(datasetFindings(scan).map((f) => f.rule)).toContain("dataset-caption-unreadable");
    const events = await collectEvents(prepareDataset({ datasetDir: ds, outDir: join(tmp, "prepared"), resolution: 256, concurrency: 1 }));
    expect(events).toContainEqual(expect.objectContaining({ type: "warning", code: "caption-too-large", file: "a.txt" }));
    const done = events.find((e) => e.type === "done");
    expect(done?.type === "done" && done.result).toMatchObject({ captionsCopied: 0, captionsMissing: 1 });
    expect((await stat(join(ds, "a.txt"))).size).toBe(GB3);
  });
});
