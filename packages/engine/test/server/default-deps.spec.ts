import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "@loraspec/engine/server/create-app.js";
import { defaultDeps } from "@loraspec/engine/server/default-deps.js";

/** The API over the real core and engine (lint, plan, dataset probe and dedupe), no fakes. */
const TOKEN = "t".repeat(32);
const auth = { Host: "127.0.0.1:4747", Authorization: `Bearer ${TOKEN}` };
let project: string;
let app: ReturnType<typeof createApp>;

const contract = (trigger: string) => `version: 1
name: real
base: { model: sdxl }
trainer: { name: diffusers }
target: character
dataset: { path: ./dataset, resolution: 256 }
trigger: { word: ${trigger} }
hyperparameters: { steps: 1500, save_every: 250 }
`;

beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), "loraspec-server-real-"));
  const ds = join(project, "dataset");
  await mkdir(ds);
  const photo = (seed: number, size: number) =>
    sharp({ create: { width: size, height: size, channels: 3, background: { r: (seed * 53) % 255, g: (seed * 97) % 255, b: (seed * 31) % 255 } } })
      .composite([{ input: Buffer.from(`<svg width="${size}" height="${size}"><circle cx="${size / 3 + seed * 7}" cy="${size / 2}" r="${size / 5}" fill="white"/></svg>`) }])
      .png()
      .toBuffer();
  for (let i = 0; i < 4; i++) {
    await writeFile(join(ds, `p${i}.png`), await photo(i, 320));
    await writeFile(join(ds, `p${i}.txt`), `zxqv, photo ${i}`);
  }
  await copyFile(join(ds, "p0.png"), join(ds, "p0-copy.png"));
  await writeFile(join(ds, "small.png"), await photo(9, 64));
  await writeFile(join(ds, "broken.png"), "not a png at all");
  await writeFile(join(project, "lora.yaml"), contract("zxqv"));
  app = createApp({ projectDir: project, token: TOKEN, ...defaultDeps() });
});

afterAll(async () => {
  await rm(project, { recursive: true, force: true });
});

describe("server with the real engine", () => {
  it("marks unreadable, too-small and duplicate images in the dataset listing", async () => {
    const body = await (await app.request("/api/dataset", { headers: auth })).json();
    const codes = Object.fromEntries(body.images.map((i: { path: string; problems: Array<{ code: string }> }) => [i.path, i.problems.map((p) => p.code)]));
    expect(codes["broken.png"]).toContain("unreadable");
    expect(codes["small.png"]).toContain("too-small");
    // One of the two identical files is marked as the duplicate; the other is kept.
    const dup = ["p0.png", "p0-copy.png"].filter((p) => codes[p].includes("duplicate"));
    expect(dup).toHaveLength(1);
    expect(codes["p1.png"]).toEqual([]);
  });

  it("lints with the English word list on the server (a rule the browser cannot run)", async () => {
    const lint = async (yaml: string) =>
      (await (await app.request("/api/lint", { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body: JSON.stringify({ yaml }) })).json()).findings as Array<{ rule: string }>;
    expect((await lint(contract("dog"))).map((f) => f.rule)).toContain("trigger-english-word");
    expect((await lint(contract("zxqv"))).map((f) => f.rule)).not.toContain("trigger-english-word");
  });

  it("plans with the dataset scan (its image count, not the recommended one)", async () => {
    const res = await app.request("/api/plan", { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body: JSON.stringify({ yaml: contract("zxqv") }) });
    const { plan } = await res.json();
    expect(plan.images.source).toBe("scan");
    expect(plan.steps).toBe(1500);
  });

  it("plans with the reg folder's scan too (dataset.reg_path), as check does (core plan/plan-inputs.ts)", async () => {
    await mkdir(join(project, "reg"), { recursive: true });
    for (const i of [1, 2, 3]) await copyFile(join(project, "dataset", `p${i}.png`), join(project, "reg", `r${i}.png`));
    const yaml = contract("zxqv").replace("dataset: { path: ./dataset,", "dataset: { path: ./dataset, reg_path: ./reg,");
    const res = await app.request("/api/plan", { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body: JSON.stringify({ yaml }) });
    const { plan } = await res.json();
    // counted from the folder (the scan drops look-alikes as prep would), not assumed as many as the dataset's
    expect(plan.reg).toMatchObject({ counted: "scan", rule: "pool" });
    expect(plan.reg.count).toBeGreaterThan(0);
    expect(plan.reg.count).toBeLessThanOrEqual(3);
  });

  it("offers the repository's examples and creates a project from one whose contract checks", async () => {
    const examplesDir = join(import.meta.dirname, "../../../../examples");
    const fresh = await mkdtemp(join(tmpdir(), "loraspec-server-example-"));
    try {
      const a = createApp({ projectDir: fresh, token: TOKEN, examplesDir, ...defaultDeps() });
      const info = await (await a.request("/api/project", { headers: auth })).json();
      expect(info.examples).toContain("character");
      const res = await a.request("/api/project/from-example", {
        method: "POST",
        headers: { ...auth, "Content-Type": "application/json" },
        body: JSON.stringify({ example: "character" }),
      });
      expect(res.status).toBe(200);
      const contract = await (await a.request("/api/contract", { headers: auth })).json();
      expect(contract.error).toBeUndefined();
      const dataset = await (await a.request("/api/dataset", { headers: auth })).json();
      expect(dataset.images.length).toBeGreaterThan(0);
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  });

  it("a contract with a schema error is refused with its field, and not written", async () => {
    const res = await app.request("/api/contract", {
      method: "PUT",
      headers: { ...auth, "Content-Type": "application/json" },
      body: JSON.stringify({ yaml: contract("zxqv").replace("steps: 1500", "steps: -3"), base: await readFile(join(project, "lora.yaml"), "utf8") }),
    });
    expect(res.status).toBe(422);
    expect((await res.json()).error.field).toBe("hyperparameters.steps");
  });
});
