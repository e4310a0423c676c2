import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { datasetFindings } from "@loraspec/engine/dataset/dataset-findings.js";
import { scanDataset } from "@loraspec/engine/dataset/scan-dataset.js";
import type { DatasetResponse } from "@loraspec/engine/server/api-types.js";
import { createApp } from "@loraspec/engine/server/create-app.js";

/**
 * The Dataset page's grid comes from the server's own listing, which leaves hidden files out (names
 * starting with ".", as prep and the trainers do): the listing names them, with check's
 * dataset-hidden-files finding word for word, so the page says what it leaves out.
 */
const TOKEN = "hidden-token-0123456789abcdef";
const auth = { Host: "127.0.0.1:4747", Authorization: `Bearer ${TOKEN}` };
let root: string;
let dataset: string;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-hidden-"));
  dataset = join(root, "dataset");
  await mkdir(join(dataset, "sub"), { recursive: true });
  await mkdir(join(dataset, ".git"), { recursive: true });
  await mkdir(join(dataset, ".loraspec"), { recursive: true });
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#0a0a0a" } }).png().toBuffer();
  await writeFile(join(dataset, "a.png"), png);
  await writeFile(join(dataset, "._a.png"), png);
  await writeFile(join(dataset, ".DS_Store"), "x");
  await writeFile(join(dataset, "sub", ".b.png"), png);
  await writeFile(join(root, "lora.yaml"), "version: 1\nname: hidden\ndataset: { path: ./dataset }\n");
  app = createApp({ projectDir: root, token: TOKEN, parseContract: ({ text }) => parseYaml(text), lint: async () => [], plan: () => ({}) });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("GET /api/dataset", () => {
  it("names the hidden files it leaves out, with check's dataset-hidden-files finding", async () => {
    const res = await app.request("/api/dataset", { headers: auth });
    expect(res.status).toBe(200);
    const body = (await res.json()) as DatasetResponse;
    expect(body.images.map((i) => i.path)).toEqual(["a.png"]);
    expect(body.hidden).toEqual([".DS_Store", "._a.png", ".git/", "sub/.b.png"]);
    const check = datasetFindings(await scanDataset({ dir: dataset, decode: false })).find((f) => f.rule === "dataset-hidden-files");
    expect(body.hiddenFinding).toEqual(check);
    expect(body.hiddenFinding?.message).toBe('prep and the trainers leave out 4 hidden file(s) (names starting with "."): .DS_Store, ._a.png, .git/, sub/.b.png');
  });

  it("a folder without hidden files has none and no finding", async () => {
    await rm(join(dataset, "._a.png"));
    await rm(join(dataset, ".DS_Store"));
    await rm(join(dataset, ".git"), { recursive: true });
    await rm(join(dataset, "sub"), { recursive: true });
    const body = (await (await app.request("/api/dataset", { headers: auth })).json()) as DatasetResponse;
    expect([body.hidden, body.hiddenFinding]).toEqual([[], undefined]);
  });
});
