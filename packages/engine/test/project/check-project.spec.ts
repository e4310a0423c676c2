import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkProject } from "@loraspec/engine/project/check-project.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { planFrom } from "@loraspec/core/plan/plan-inputs.js";

const root = fileURLToPath(new URL("../../../..", import.meta.url));
let dir: string;
let server: Server;
let origin: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "loraspec-checkproject-"));
  await cp(join(root, "examples", "character", "dataset"), join(dir, "dataset"), { recursive: true });
  const example = await readFile(join(root, "examples", "character", "lora.yaml"), "utf8");
  await writeFile(join(dir, "lora.yaml"), example);
  await writeFile(
    join(dir, "fal.yaml"),
    example
      .replace("model: flux1-dev", "model: flux2-dev")
      .replace("name: ai-toolkit", "name: fal")
      .replace("version: 0.12.26", "endpoint: fal-ai/flux-2-trainer")
      .replace("kind: local", "kind: fal"),
  );
  // Local emulator of fal's pricing API; the injected fetch sends api.fal.ai requests here.
  server = createServer((req, res) => {
    const ok = req.headers.authorization === "Key test-key";
    res.writeHead(ok ? 200 : 401, { "content-type": "application/json" });
    res.end(JSON.stringify(ok ? { prices: [{ endpoint_id: "fal-ai/flux-2-trainer", unit_price: 0.0064, unit: "steps", currency: "USD" }] } : { detail: "no" }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

const viaEmulator: typeof fetch = (input, init) => fetch(String(input).replace("https://api.fal.ai", origin), init);

describe("checkProject", () => {
  it("lints the example with its dataset scan and plans it", async () => {
    const r = await checkProject({ cwd: dir });
    expect(r.dataset?.images).toHaveLength(20);
    expect(r.findings.filter((f) => f.severity === "error")).toEqual([]);
    expect(r.plan.steps).toBe(2000);
  });

  it("a bad .loraspec/dataset-pins.json is one warning naming the file and what is wrong; the rest of check goes on", async () => {
    const clean = await checkProject({ cwd: dir });
    await mkdir(join(dir, ".loraspec"), { recursive: true });
    try {
      for (const [text, what] of [["{not json", /is not JSON/], [JSON.stringify({ version: 1, keep: ["../outside.png"] }), /keep\.0: must stay inside/]] as const) {
        await writeFile(join(dir, ".loraspec", "dataset-pins.json"), text);
        const r = await checkProject({ cwd: dir });
        const pins = r.findings.filter((f) => f.rule === "dataset-pins-invalid");
        expect(pins).toEqual([expect.objectContaining({ severity: "warning", message: expect.stringMatching(what) })]);
        expect(pins[0]!.message).toContain(".loraspec/dataset-pins.json");
        expect(r.findings.filter((f) => f.rule !== "dataset-pins-invalid")).toEqual(clean.findings);
        expect(r.plan.steps).toBe(clean.plan.steps);
        expect(r.dataset?.images).toHaveLength(20);
      }
    } finally {
      await rm(join(dir, ".loraspec"), { recursive: true, force: true });
    }
  });

  it("uses the live fal price when FAL_KEY is set, and says so", async () => {
    const r = await checkProject({ cwd: dir, path: "fal.yaml", falKey: "test-key", fetch: viaEmulator });
    expect(r.plan.cost.usd).toBe(12.8);
    expect(r.plan.cost.basis).toMatch(/^live fal price 0\.0064 USD per steps/);
  });

  it("falls back to the price record, with a note, when the live fetch fails", async () => {
    const r = await checkProject({ cwd: dir, path: "fal.yaml", falKey: "wrong-key", fetch: viaEmulator });
    expect(r.plan.cost.usd).toBe(16);
    expect(r.plan.cost.basis).toMatch(/fal price record/);
    expect(r.notes.join(" ")).toMatch(/live fal price unavailable/);
    expect(r.findings.find((f) => f.rule === "cost-over-limit")?.severity).toBe("error");
  });

  it("scans the regularisation folder too and names dataset.reg_path when it is missing or empty", async () => {
    const withReg = (await readFile(join(dir, "lora.yaml"), "utf8")).replace("  path: ./dataset", "  path: ./dataset\n  reg_path: ./reg");
    await writeFile(join(dir, "reg.yaml"), withReg);
    const missing = await checkProject({ cwd: dir, path: "reg.yaml" }).catch((e: unknown) => e);
    expect(isLoraspecError(missing) && [missing.code, missing.field]).toEqual(["E_DATASET_NOT_FOUND", "dataset.reg_path"]);
    await cp(join(dir, "dataset", "txcl_01.txt"), join(dir, "reg", "only-a-caption.txt"));
    const empty = await checkProject({ cwd: dir, path: "reg.yaml" }).catch((e: unknown) => e);
    expect(isLoraspecError(empty) && [empty.code, empty.field]).toEqual(["E_DATASET_EMPTY", "dataset.reg_path"]);
    await cp(join(dir, "dataset", "txcl_01.png"), join(dir, "reg", "a.png"));
    await cp(join(dir, "dataset", "txcl_02.png"), join(dir, "reg", "b.png"));
    await writeFile(join(dir, "reg", "a.txt"), "a photo of a person");
    const r = await checkProject({ cwd: dir, path: "reg.yaml" });
    expect(r.regDataset?.images).toHaveLength(2);
    expect(r.dataset?.images).toHaveLength(20);
    expect(r.notes.join(" ")).toMatch(/1 of 2 regularisation images have no caption/);
    // the plan counts the reg images check listed (plan/epoch.ts: steps/epoch with them, as the trainer mixes them in)
    expect(r.plan.reg).toMatchObject({ count: 2, counted: "scan" });
    expect(r.plan.stepsPerEpoch).toBe(planRun(r.loaded.contract, r.dataset, { regImages: 2 }).stepsPerEpoch);
    // what the plan was made from is handed on (core plan/plan-inputs.ts): the OOM fallback's re-plan counts the same reg images
    expect(r.sources.regDataset?.images).toHaveLength(2);
    expect(planFrom(r.loaded.contract, r.sources)).toEqual(r.plan);
  });

  it("an empty dataset folder is unusable input", async () => {
    const empty = await mkdtemp(join(tmpdir(), "loraspec-empty-"));
    try {
      await writeFile(join(empty, "lora.yaml"), await readFile(join(dir, "lora.yaml"), "utf8"));
      await cp(join(dir, "dataset", "txcl_01.txt"), join(empty, "dataset", "only-a-caption.txt"));
      const error = await checkProject({ cwd: empty }).catch((e: unknown) => e);
      expect(isLoraspecError(error) && [error.code, error.field]).toEqual(["E_DATASET_EMPTY", "dataset.path"]);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
