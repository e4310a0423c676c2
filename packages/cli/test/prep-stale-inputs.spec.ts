import { spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkProject } from "@loraspec/engine/project/check-project.js";
import { PREP_INPUT_KINDS, type PrepInputKind } from "@loraspec/engine/dataset/prep-inputs.js";
import { saveDatasetPinChoice } from "@loraspec/engine/dataset/stored-pins.js";
import { photoLike } from "../../engine/test/dataset/make-images.js";

/**
 * A prepared folder is stale when any input `loraspec prep` read changed after it ran (prep-inputs.ts): one case per
 * way each kind of input changes. Each: changed after prep -> check's dataset-prepared-stale names the file; prep
 * again (the real CLI, with its stored-pins handling) -> check finds the folder up to date (staleness never sticks).
 */

const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");

function prep(args: string[] = []): Promise<{ code: number | null; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [bin, "prep", "--no-embed", ...args], { cwd: project, env: { ...process.env, NO_COLOR: "1", CI: "1" }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("close", (code) => done({ code, stderr }));
  });
}

async function stale() {
  const r = await checkProject({ cwd: project, env: { HF_HUB_CACHE: join(tmp, "empty-cache") } });
  return r.findings.find((f) => f.rule === "dataset-prepared-stale");
}

let tmp: string;
let project: string;
const photos = (name: string) => join(project, "photos", name);
const contract = (resolution: number, more = "", trainer = "{ name: kohya, version: v0.10.1 }") =>
  `version: 1\nname: stale\nbase: { model: sdxl }\ntrainer: ${trainer}\ntarget: character\ndataset: { path: ./photos, resolution: ${resolution}${more} }\ntrigger: { word: txcl }\n`;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-stale-inputs-"));
  project = join(tmp, "project");
  await mkdir(join(project, "photos"), { recursive: true });
  for (let i = 0; i < 4; i++) await photoLike(400, 300, 700 + i).jpeg().toFile(photos(`p${i}.jpg`));
  // An exact copy: one duplicate cluster, for the keep/drop choices.
  await copyFile(photos("p0.jpg"), photos("p0-copy.jpg"));
  await writeFile(photos("p0.txt"), "a photo of txcl\n");
  await writeFile(join(project, "lora.yaml"), contract(256));
  const first = await prep();
  expect(first.code, first.stderr).toBe(0);
}, 120_000);
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

interface Case {
  kind: PrepInputKind;
  what: string;
  change: () => Promise<void>;
  /** The file the finding names. */
  file: string;
  message?: RegExp;
}

const cases: Case[] = [
  { kind: "image", what: "an image replaced", change: () => photoLike(400, 300, 800).jpeg().toFile(photos("p1.jpg")).then(() => undefined), file: "p1.jpg" },
  { kind: "image", what: "an image added", change: () => photoLike(400, 300, 801).jpeg().toFile(photos("p4.jpg")).then(() => undefined), file: "p4.jpg" },
  { kind: "image", what: "an image removed", change: () => rm(photos("p4.jpg")), file: "p4.jpg" },
  { kind: "caption", what: "a caption edited", change: () => writeFile(photos("p0.txt"), "txcl smiling in a red coat\n"), file: "p0.txt", message: /1 caption file\(s\) added, removed or edited \(p0\.txt/ },
  { kind: "caption", what: "a caption added", change: () => writeFile(photos("p1.txt"), "txcl outdoors\n"), file: "p1.txt" },
  { kind: "caption", what: "a caption removed", change: () => rm(photos("p1.txt")), file: "p1.txt" },
  {
    kind: "pins",
    what: "a keep choice made on the page",
    change: () => saveDatasetPinChoice({ projectDir: project, datasetDir: join(project, "photos"), choice: { action: "keep", file: "p0-copy.jpg", cluster: ["p0.jpg", "p0-copy.jpg"] } }).then(() => undefined),
    file: ".loraspec/dataset-pins.json",
    message: /keep\/drop choices on duplicates changed/,
  },
  { kind: "setting", what: "the contract's resolution", change: () => writeFile(join(project, "lora.yaml"), contract(320)), file: "lora.yaml", message: /the contract now asks for resolution 256 -> 320/ },
  { kind: "setting", what: "the contract's aspect (Kohya's bucket set)", change: () => writeFile(join(project, "lora.yaml"), contract(320, ", aspect: buckets")), file: "lora.yaml", message: /aspect square -> buckets/ },
  {
    kind: "setting",
    what: "the contract's trainer (ai-toolkit shapes buckets its own way)",
    change: () => writeFile(join(project, "lora.yaml"), contract(320, ", aspect: buckets", "{ name: ai-toolkit, version: \"0.12.26\" }")),
    file: "lora.yaml",
    message: /buckets changed|shapes/,
  },
  { kind: "setting", what: "the contract's crop", change: () => writeFile(join(project, "lora.yaml"), contract(320, ", aspect: buckets, crop: attention")), file: "lora.yaml", message: /crop center -> attention/ },
];

describe("every input prep reads makes its prepared folder stale when it changes (prep-inputs.ts)", () => {
  it("the table has a case for every kind of input", () => {
    expect(new Set(cases.map((c) => c.kind))).toEqual(new Set(PREP_INPUT_KINDS));
  });

  it("up to date right after prep", async () => {
    expect(await stale()).toBeUndefined();
  }, 60_000);

  for (const c of cases) {
    it(`${c.kind}: ${c.what} -> stale naming ${c.file}; prep again -> up to date`, async () => {
      await c.change();
      const finding = await stale();
      expect(finding?.files).toContain(c.file);
      if (c.message) expect(finding?.message).toMatch(c.message);
      const again = await prep();
      expect(again.code, again.stderr).toBe(0);
      expect(await stale()).toBeUndefined();
    }, 120_000);
  }

  it("prep --pin (recorded in the pins file after the run) leaves the folder up to date", async () => {
    const pinned = await prep(["--pin", "p0.jpg"]);
    expect(pinned.code, pinned.stderr).toBe(0);
    expect(await readFile(join(project, ".loraspec", "dataset-pins.json"), "utf8")).toContain('"p0.jpg"');
    expect(await stale()).toBeUndefined();
  }, 120_000);
});
