import { mkdir, mkdtemp, readdir, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents, type LoraspecEvent } from "@loraspec/core/events.js";
import { prepareDataset, type PrepSummary } from "@loraspec/engine/dataset/prepare-dataset.js";
import { photoLike } from "./make-images.js";

const RES = 128;
let root: string;
let dataset: string;
let out: string;

const jpeg = async (seed: number) => photoLike(160, 160, seed).jpeg().toBuffer();
const png = async (seed: number) => photoLike(160, 160, seed).png().toBuffer();

async function prep(): Promise<{ summary: PrepSummary; stale: Array<{ file?: string; message: string }> }> {
  const events = await collectEvents(prepareDataset({ datasetDir: dataset, outDir: out, resolution: RES, concurrency: 1 }));
  const stale = events.filter((e): e is Extract<LoraspecEvent, { type: "warning" }> => e.type === "warning" && e.code === "caption-stale");
  return { summary: (events.find((e) => e.type === "done") as unknown as { result: PrepSummary }).result, stale };
}

const caption = (name: string) => readFile(join(out, name), "utf8").catch(() => undefined);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-prep-captions-"));
  dataset = join(root, "dataset");
  out = join(root, ".loraspec", "prepared");
  await mkdir(dataset, { recursive: true });
  await writeFile(join(dataset, "x.jpg"), await jpeg(1));
  await writeFile(join(dataset, "y.jpg"), await jpeg(2));
  await writeFile(join(dataset, "y.txt"), "txcl, the sidecar of y");
  await writeFile(join(dataset, "k.jpg"), await jpeg(3));
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe("prep never keeps a caption beside image bytes it was not written for", () => {
  it("a caption written in the prepared folder (by hand or `loraspec caption`) is parked with a warning when its image changes", async () => {
    await prep();
    await writeFile(join(out, "x.txt"), "txcl, a red square on blue");
    await writeFile(join(out, "k.txt"), "txcl, kept: its image does not change");
    await writeFile(join(dataset, "x.jpg"), await jpeg(99));
    const { summary, stale } = await prep();
    expect(summary.processed).toEqual(["x.jpg"]);
    expect(stale).toEqual([expect.objectContaining({ file: "x.jpg", message: expect.stringContaining(join(".removed", "x.txt")) })]);
    expect(summary.staleCaptions).toEqual([{ source: "x.jpg", parked: join(".removed", "x.txt") }]);
    expect(await caption("x.txt")).toBeUndefined();
    expect(await caption(join(".removed", "x.txt"))).toBe("txcl, a red square on blue");
    expect(await caption("k.txt")).toBe("txcl, kept: its image does not change");
    expect(summary.captionsMissing).toBe(1);
    // Once: the next run has nothing to say, and a caption put back (or written anew) stays.
    await writeFile(join(out, "x.txt"), "txcl, a new caption");
    const again = await prep();
    expect([again.stale, again.summary.staleCaptions, await caption("x.txt")]).toEqual([[], [], "txcl, a new caption"]);
  });

  it("keeps prep's own copy of an unchanged sidecar (the dataset's pairing); a hand edit of it is parked and the sidecar copied in", async () => {
    expect(await caption("y.txt")).toBe("txcl, the sidecar of y");
    await writeFile(join(dataset, "y.jpg"), await jpeg(98));
    const first = await prep();
    expect([first.stale, await caption("y.txt")]).toEqual([[], "txcl, the sidecar of y"]);

    await writeFile(join(out, "y.txt"), "txcl, my hand edit of y");
    await writeFile(join(dataset, "y.jpg"), await jpeg(97));
    const second = await prep();
    expect(second.stale.map((w) => w.file)).toEqual(["y.jpg"]);
    expect(second.stale[0]!.message).toContain("the dataset's y.txt is copied in instead");
    expect(await caption("y.txt")).toBe("txcl, the sidecar of y");
    expect(await caption(join(".removed", "y.txt"))).toBe("txcl, my hand edit of y");
  });

  it("a parked caption never overwrites an earlier one", async () => {
    await writeFile(join(out, "x.txt"), "txcl, second caption of x");
    await writeFile(join(dataset, "x.jpg"), await jpeg(96));
    const { summary } = await prep();
    expect(summary.staleCaptions).toEqual([{ source: "x.jpg", parked: join(".removed", "x.2.txt") }]);
    expect(await caption(join(".removed", "x.txt"))).toBe("txcl, a red square on blue");
    expect(await caption(join(".removed", "x.2.txt"))).toBe("txcl, second caption of x");
  });

  it("an image replaced by another file of the same name (k.jpg -> k.png) gets neither the old caption nor loses its output", async () => {
    await unlink(join(dataset, "k.jpg"));
    await writeFile(join(dataset, "k.png"), await png(95));
    const { summary } = await prep();
    expect(summary.removed).toEqual(["k.jpg"]);
    expect(summary.processed).toEqual(["k.png"]);
    expect(await readdir(out)).toContain("k.png");
    expect(await caption("k.txt")).toBeUndefined();
    expect(await caption(join(".removed", "k.txt"))).toBe("txcl, kept: its image does not change");
  });
});
