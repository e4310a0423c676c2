import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { prepareTraining } from "../../src/run/prepare-training.js";
import { checkProject } from "../../src/project/check-project.js";
import { tempDirsPerFile } from "../test-helpers.js";

/** Temp folders, removed when this file's tests are done. */
const tempDir = tempDirsPerFile("aitk-install-");

const example = fileURLToPath(new URL("../../../../examples/character", import.meta.url));

/** An ai-toolkit install as `loraspec setup` leaves it, as far as train looks (its venv's python). */
function aitkInstall(): NodeJS.ProcessEnv {
  const dir = tempDir();
  mkdirSync(join(dir, ".venv", "bin"), { recursive: true });
  writeFileSync(join(dir, ".venv", "bin", "python"), "");
  return { ...process.env, LORASPEC_AI_TOOLKIT_DIR: dir };
}

/**
 * A prepared folder's manifest as prep writes it, naming its dataset (prepared-folder.ts matches on it), with an
 * entry (size, sha256) for each of the dataset's images as they are now: up to date, so check does not call it stale.
 */
const manifest = (dataset: string) =>
  JSON.stringify({
    version: 1,
    dataset,
    settings: { crop: "center" },
    updatedAt: new Date(0).toISOString(),
    entries: readdirSync(dataset)
      .filter((f) => f.endsWith(".png"))
      .map((source) => {
        const bytes = readFileSync(join(dataset, source));
        return { source, size: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex"), width: 1024, height: 1024, status: "prepared", problems: [], output: source };
      }),
  });

function project(): string {
  const dir = tempDir("prepare-training-");
  cpSync(example, dir, { recursive: true });
  return dir;
}

describe("prepareTraining", () => {
  it("trains on the dataset folder until prep has run, then on the prepared folder", async () => {
    const dir = project();
    const before = await prepareTraining({ path: join(dir, "lora.yaml"), env: aitkInstall() });
    expect(before.trainingData).toEqual({ dir: join(dir, "dataset"), prepared: false, dataset: join(dir, "dataset") });

    mkdirSync(join(dir, ".loraspec", "prepared"), { recursive: true });
    writeFileSync(join(dir, ".loraspec", "prepared", "manifest.json"), manifest(join(dir, "dataset")));
    const after = await prepareTraining({ path: join(dir, "lora.yaml"), env: aitkInstall() });
    expect(after.trainingData).toEqual({ dir: join(dir, ".loraspec", "prepared"), prepared: true, dataset: join(dir, "dataset") });
  });

  it("a second contract on another dataset trains on its own images, not the first one's prepared folder, and check says so", async () => {
    const dir = project();
    // lora.yaml's dataset is prepared; c.yaml (the same contract on ./d2, the first 16 images) is not.
    mkdirSync(join(dir, "d2"));
    for (const name of readdirSync(join(dir, "dataset")).sort().slice(0, 32)) cpSync(join(dir, "dataset", name), join(dir, "d2", name));
    writeFileSync(join(dir, "c.yaml"), readFileSync(join(dir, "lora.yaml"), "utf8").replace("path: ./dataset", "path: ./d2").replace(/expected_images: \d+/, "expected_images: 16"));
    const preparedA = join(dir, ".loraspec", "prepared");
    mkdirSync(preparedA, { recursive: true });
    writeFileSync(join(preparedA, "manifest.json"), manifest(join(dir, "dataset")));

    const b = await prepareTraining({ path: join(dir, "c.yaml"), env: aitkInstall() });
    expect(b.trainingData).toEqual({ dir: join(dir, "d2"), prepared: false, dataset: join(dir, "d2"), others: [{ dir: preparedA, dataset: join(dir, "dataset") }] });
    expect(b.notes.join("\n")).toContain(`the run trains on ${join(dir, "d2")} (as it is, not prepared: ${preparedA} was prepared from ${join(dir, "dataset")}`);
    const a = await prepareTraining({ path: join(dir, "lora.yaml"), env: aitkInstall() });
    expect(a.trainingData).toMatchObject({ dir: preparedA, prepared: true });
    expect(a.notes.join("\n")).not.toContain("the run trains on");
  });

  it("leaves the cost limit to the caller and refuses lint errors", async () => {
    const dir = project();
    const withLimit = join(dir, "lora.yaml");
    const text = (await import("node:fs")).readFileSync(withLimit, "utf8");
    writeFileSync(withLimit, text.replace(/max_cost_usd: [0-9.]+/, "max_cost_usd: 0.01"));
    const prepared = await prepareTraining({ path: withLimit, env: aitkInstall() });
    expect(prepared.costOverLimit?.maxUsd).toBe(0.01);

    writeFileSync(withLimit, text.replace(/word: txcl/, "word: sunset"));
    await expect(prepareTraining({ path: withLimit, env: aitkInstall() })).rejects.toMatchObject({ code: "E_CONTRACT_INVALID" });
  });

  it("refuses a local trainer that is not installed, with the setup command, before any run exists", async () => {
    const dir = project();
    const env = { ...process.env, LORASPEC_AI_TOOLKIT_DIR: tempDir("no-aitk-") };
    const error = await prepareTraining({ path: join(dir, "lora.yaml"), env }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_WORKER_NOT_INSTALLED", field: "trainer.name" });
    expect((error as { hint?: string }).hint).toMatch(/loraspec setup ai-toolkit/);
    expect(existsSync(join(dir, ".loraspec", "runs"))).toBe(false);
  });

  it("fal without a key: check warns trainer-not-ready with train's own code and fix, and train refuses before any run exists", async () => {
    const dir = project();
    const fal = join(dir, "fal.yaml");
    const good = readFileSync(fileURLToPath(new URL("../../../../examples/pitfalls/good-fal-flux2.yaml", import.meta.url)), "utf8");
    writeFileSync(fal, good.replace("path: ../character/dataset", "path: ./dataset"));
    const noKey = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("FAL_KEY")));
    const checked = await checkProject({ path: fal, env: noKey });
    const finding = checked.findings.find((f) => f.rule === "trainer-not-ready");
    expect(finding).toMatchObject({ severity: "warning", field: "trainer.name", message: expect.stringContaining("E_REMOTE_AUTH") });
    const error = await prepareTraining({ path: fal, env: noKey }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_REMOTE_AUTH", field: "trainer.name" });
    expect(finding!.fix).toBe((error as { hint?: string }).hint);
    expect(existsSync(join(dir, ".loraspec", "runs"))).toBe(false);
    await expect(prepareTraining({ path: fal, env: noKey, falKey: "k" })).resolves.toBeDefined();
  });
});
