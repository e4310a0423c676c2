import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { prepareDataset, type PrepSummary } from "@loraspec/engine/dataset/prepare-dataset.js";
import { embedWithWorker, type EmbedOutcome } from "@loraspec/engine/dataset/worker-embedder.js";
import { photoLike } from "./make-images.js";

let tmp: string;
let ds: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-embed-"));
  ds = join(tmp, "photos");
  await mkdir(ds);
  const base = await photoLike(300, 300, 21).png().toBuffer();
  await writeFile(join(ds, "a.png"), base);
  await writeFile(join(ds, "a-q60.jpg"), await sharp(base).jpeg({ quality: 60 }).toBuffer());
  await writeFile(join(ds, "b.png"), await photoLike(300, 300, 22).png().toBuffer());
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function prep(out: string, embed?: (paths: string[]) => Promise<EmbedOutcome>) {
  const events = await collectEvents(prepareDataset({ datasetDir: ds, outDir: join(tmp, out), resolution: 256, embed }));
  const done = events.find((e) => e.type === "done");
  return { events, summary: (done?.type === "done" ? done.result : undefined) as unknown as PrepSummary };
}

describe("near duplicates confirmed by embeddings", () => {
  it("asks only for the candidate pair, and an embedding that disagrees keeps both", async () => {
    const asked: string[][] = [];
    const unlike = async (paths: string[]): Promise<EmbedOutcome> => {
      asked.push(paths.map((p) => p.slice(ds.length + 1)).sort());
      return { embeddings: new Map(paths.map((p, i) => [p, i === 0 ? [1, 0] : [0, 1]])), model: "test" };
    };
    expect((await prep("p1")).summary.duplicates).toHaveLength(1);
    const vetoed = await prep("p2", unlike);
    expect(asked).toEqual([["a-q60.jpg", "a.png"]]);
    expect(vetoed.summary.duplicates).toEqual([]);
    expect(vetoed.summary.outputs).toBe(3);
  });

  it("no worker: hash and pixels decide, with a warning saying so", async () => {
    const r = await prep("p3", (paths) => embedWithWorker(paths, { python: join(tmp, "no-python") }));
    expect(r.summary.duplicates.map((c) => c.drop)).toEqual([["a-q60.jpg"]]);
    const warning = r.events.find((e) => e.type === "warning" && e.code === "dedupe-unconfirmed");
    expect(warning?.type === "warning" && warning.message).toMatch(/E_WORKER_NOT_INSTALLED/);
  });

  it("offline, a CLIP model not in the HF cache: the real worker gives up in seconds, and the warning says embeddings are off and how to turn them on", async () => {
    const hub = await closedPortEndpoint();
    const env = { HF_HOME: join(tmp, "hf-home"), HF_HUB_CACHE: join(tmp, "hf-home", "hub"), HF_ENDPOINT: hub, HF_HUB_OFFLINE: "0", TRANSFORMERS_OFFLINE: "0" };
    const started = Date.now();
    const r = await prep("p4", (paths) => embedWithWorker(paths, { env }));
    const seconds = (Date.now() - started) / 1000;
    expect(r.summary.duplicates.map((c) => c.drop)).toEqual([["a-q60.jpg"]]);
    const warning = r.events.find((e) => e.type === "warning" && e.code === "dedupe-unconfirmed");
    const message = warning?.type === "warning" ? warning.message : "";
    expect(message).toContain("embedding-based duplicate detection is off");
    expect(message).toContain(`E_REMOTE: cannot load the clip model 'openai/clip-vit-large-patch14'`);
    expect(message).toContain(hub);
    expect(message).toMatch(/to turn it on: run once with a network connection/);
    // The hub's retries took ~55 s; worker start-up (python, torch's import for the device) is most of what is left.
    expect(seconds).toBeLessThan(20);
  }, 60_000);
});

/** An http:// endpoint on a local port nothing listens on (bound, then closed): every connection is refused at once. */
async function closedPortEndpoint(): Promise<string> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return `http://127.0.0.1:${port}`;
}
