import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { KOHYA_PIN } from "@loraspec/core/trainers/pins.js";
import { DOCTOR_FACTS, versionAtLeast } from "@loraspec/engine/doctor/doctor-facts.js";
import { runDoctor, type DoctorItem } from "@loraspec/engine/doctor/run-doctor.js";
import { workerStamp, WORKER_STAMP, type ExecFn } from "@loraspec/engine/worker/setup-worker.js";
import { workerLayout } from "@loraspec/engine/worker/worker-paths.js";
import { tempDirsPerFile } from "../test-helpers.js";

/** Temp folders, removed when this file's tests are done. */
const tempDir = tempDirsPerFile("loraspec-doctor-");

const repo = fileURLToPath(new URL("../../../../", import.meta.url));
const SECRET = "hf_doctor_must_never_print_this";

/** An npm-package layout (no pyproject) whose worker venv is in `cache`; `venv` makes its python. */
function fixture(opts: { venv?: boolean } = {}) {
  const root = tempDir();
  mkdirSync(join(root, "pkg", "worker"), { recursive: true });
  writeFileSync(join(root, "pkg", "worker", "requirements.txt"), "torch==2.13.0\ndiffusers==0.42.1\n");
  const cache = join(root, "cache");
  const python = join(cache, "worker", "venv", "bin", "python");
  if (opts.venv) {
    mkdirSync(join(cache, "worker", "venv", "bin"), { recursive: true });
    writeFileSync(python, "");
  }
  const env: NodeJS.ProcessEnv = { HOME: join(root, "home"), LORASPEC_CACHE_DIR: cache, LORASPEC_CHROMIUM: join(root, "no-chromium") };
  return { root: join(root, "pkg"), cache, python, env, home: join(root, "home") };
}

interface FakeWorld {
  gpu?: { name: string; memoryMiB: number };
  version?: Record<string, unknown>;
  workerFails?: boolean;
  /** What `python3 -c ...` answers: a version, or a failure's stderr. */
  python?: { version: string } | { stderr: string };
}

function fakeExec(world: FakeWorld): ExecFn {
  return async (command, args) => {
    if (command === "nvidia-smi") {
      return world.gpu ? { code: 0, stdout: `${world.gpu.name}, ${world.gpu.memoryMiB}, 580.1\n`, stderr: "" } : { code: 127, stdout: "", stderr: "" };
    }
    if (args[0] === "-c") {
      const python = world.python ?? { version: "3.11.7" };
      return "version" in python ? { code: 0, stdout: `${python.version}\n`, stderr: "" } : { code: 1, stdout: "", stderr: python.stderr };
    }
    if (args.includes("loraspec_worker")) {
      if (world.workerFails) return { code: 1, stdout: "", stderr: "Traceback...\nModuleNotFoundError: No module named 'loraspec_worker'" };
      return { code: 0, stdout: `{"type":"log","level":"info","message":"x"}\n${JSON.stringify({ type: "done", result: world.version ?? {} })}\n`, stderr: "" };
    }
    throw new Error(`unexpected ${command}`);
  };
}

const byId = (items: DoctorItem[]) => Object.fromEntries(items.map((item) => [item.id, item]));

const cpuWorker = { worker: "0.1.0", python: "3.11.7", packages: { torch: "2.13.0+cpu", diffusers: "0.42.1" }, cuda: { available: false, build: null, device_info: [] } };
const h200Worker = {
  ...cpuWorker,
  packages: { torch: "2.13.0+cu128", diffusers: "0.42.1" },
  cuda: { available: true, build: "12.8", device_info: [{ name: "NVIDIA H200", capability: "9.0", memory_gib: 139.8 }] },
};

describe("runDoctor", () => {
  it.each([
    ["no venv", { venv: false }, {}, { worker: "missing", torch: "missing", gpu: "info" }],
    ["a CPU venv, no GPU", { venv: true }, { version: cpuWorker }, { worker: "ok", torch: "ok", gpu: "info" }],
    ["a CUDA venv on an H200", { venv: true }, { gpu: { name: "NVIDIA H200", memoryMiB: 143771 }, version: h200Worker }, { worker: "ok", torch: "ok", gpu: "ok" }],
    ["a CPU torch on a GPU machine", { venv: true }, { gpu: { name: "NVIDIA H200", memoryMiB: 143771 }, version: cpuWorker }, { worker: "ok", torch: "warn", gpu: "ok" }],
    ["a venv that does not answer", { venv: true }, { workerFails: true }, { worker: "warn", torch: "missing", gpu: "info" }],
    ["a drifted pin", { venv: true }, { version: { ...cpuWorker, packages: { torch: "2.13.0+cpu", diffusers: "0.40.0" } } }, { worker: "warn", torch: "ok", gpu: "info" }],
  ] as const)("%s", async (_name, layout, world, want) => {
    const f = fixture(layout);
    const report = await runDoctor({ root: f.root, env: f.env, platform: "linux", exec: fakeExec(world) });
    const items = byId(report.items);
    expect({ worker: items.worker!.status, torch: items.torch!.status, gpu: items.gpu!.status }).toEqual(want);
    for (const item of report.items) if (item.status === "missing" || item.status === "warn") expect(item.fix, item.id).toBeTruthy();
    expect(items.worker!.details).toMatchObject({ layout: "package", venv: join(f.cache, "worker", "venv") });
    if (want.worker === "missing") expect(items.worker!.fix).toBe("loraspec setup worker");
    expect(report.ok).toBe(true);
  });

  it("names the CUDA build, device, compute capability and memory", async () => {
    const f = fixture({ venv: true });
    const report = await runDoctor({ root: f.root, env: f.env, platform: "linux", exec: fakeExec({ gpu: { name: "NVIDIA H200", memoryMiB: 143771 }, version: h200Worker }) });
    expect(byId(report.items).torch!.summary).toBe("2.13.0+cu128, CUDA 12.8 build; NVIDIA H200 (compute 9.0, 139.8 GiB)");
    expect(byId(report.items).worker!.summary).toContain("0.1.0 on Python 3.11.7");
    expect(byId(report.items).worker!.summary).toContain("torch 2.13.0+cu128, diffusers 0.42.1");
    expect(byId(report.items).gpu!.summary).toBe("NVIDIA H200, 140 GiB, driver 580.1 (nvidia-smi)");
  });

  it.each([
    [{ HF_TOKEN: SECRET, FAL_KEY: SECRET }, "ok", "ok"],
    [{ HUGGING_FACE_HUB_TOKEN: SECRET }, "ok", "info"],
    [{ tokenFile: true }, "ok", "info"],
    [{}, "warn", "info"],
  ])("secrets %j: hf-token %s, fal %s, and never printed", async (secrets, hfStatus, falStatus) => {
    const f = fixture();
    const { tokenFile, ...vars } = secrets as Record<string, string | boolean>;
    if (tokenFile) {
      mkdirSync(join(f.home, ".cache", "huggingface"), { recursive: true });
      writeFileSync(join(f.home, ".cache", "huggingface", "token"), SECRET);
    }
    const report = await runDoctor({ root: f.root, env: { ...f.env, ...(vars as Record<string, string>) }, platform: "linux", exec: fakeExec({}) });
    expect(byId(report.items)["hf-token"]!.status).toBe(hfStatus);
    expect(byId(report.items).fal!.status).toBe(falStatus);
    expect(JSON.stringify(report)).not.toContain(SECRET);
  });

  it("a venv stamped for other requirements is older than this loraspec; setup's own stamp is current", async () => {
    const f = fixture({ venv: true });
    const stampFile = join(f.cache, "worker", "venv", WORKER_STAMP);
    const doctor = async () => byId((await runDoctor({ root: f.root, env: f.env, platform: "linux", exec: fakeExec({ version: cpuWorker }) })).items).worker!;
    writeFileSync(stampFile, "0123\n");
    expect(await doctor()).toMatchObject({ status: "warn", fix: "loraspec setup worker" });
    expect((await doctor()).summary).toContain("older than this loraspec");
    for (const build of ["cpu", "cuda", undefined] as const) {
      writeFileSync(stampFile, `${await workerStamp(workerLayout({ root: f.root, env: f.env, platform: "linux" }), build)}\n`);
      expect((await doctor()).status, String(build)).toBe("ok");
    }
  });

  it("reports a trainer installed at another commit than the pin, with the fix", async () => {
    const f = fixture();
    const dir = join(f.cache, "kohya");
    mkdirSync(join(dir, ".venv", "bin"), { recursive: true });
    writeFileSync(join(dir, ".venv", "bin", "python"), "");
    const manifest = { trainer: "kohya", version: "v0.9.0", commit: "0".repeat(40), trainerDir: dir, venvDir: join(dir, ".venv"), python: "python3", installedAt: "2026-12-01" };
    writeFileSync(join(dir, "loraspec-setup.json"), JSON.stringify(manifest));
    let items = byId((await runDoctor({ root: f.root, env: f.env, platform: "linux", exec: fakeExec({}) })).items);
    expect(items.kohya).toMatchObject({ status: "warn", fix: "loraspec setup kohya" });
    expect(items.kohya!.summary).toContain(KOHYA_PIN.version);
    writeFileSync(join(dir, "loraspec-setup.json"), JSON.stringify({ ...manifest, version: KOHYA_PIN.version, commit: KOHYA_PIN.commit }));
    items = byId((await runDoctor({ root: f.root, env: f.env, platform: "linux", exec: fakeExec({}) })).items);
    expect(items.kohya!.status).toBe("ok");
    expect(items["ai-toolkit"]!.status).toBe("info");
  });

  it.each([
    [{ version: "3.12.4" }, false, "ok", undefined],
    [{ version: "3.9.18" }, false, "missing", "install Python 3.10+"],
    [{ stderr: "ModuleNotFoundError: No module named 'ensurepip'" }, false, "missing", "apt-get install python3-venv"],
    [{ stderr: "spawn python3 ENOENT" }, false, "missing", "install Python 3.10+ with venv"],
    [{ stderr: "spawn python3 ENOENT" }, true, "info", "install Python 3.10+ with venv"],
  ] as const)("the setup Python %j (venv there: %s) is %s", async (python, venv, status, fix) => {
    const f = fixture({ venv });
    const items = byId((await runDoctor({ root: f.root, env: f.env, platform: "linux", exec: fakeExec({ python, version: cpuWorker }) })).items);
    expect(items.python!.status).toBe(status);
    if (fix) expect(items.python!.fix).toContain(fix);
  });

  it("an old Node is the one thing that makes the report not ok", async () => {
    const f = fixture();
    const report = await runDoctor({ root: f.root, env: f.env, platform: "linux", exec: fakeExec({}), nodeVersion: "18.19.0" });
    expect(report.ok).toBe(false);
    expect(byId(report.items).node).toMatchObject({ status: "missing" });
  });

  it("the Node minimum is package.json's engines.node", () => {
    const engines = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")).engines.node as string;
    expect(engines).toBe(`>=${DOCTOR_FACTS.node.min}`);
    expect([versionAtLeast("20.9.0", "20.9"), versionAtLeast("20.20.2", "20.9"), versionAtLeast("v22.1.0", "20.9"), versionAtLeast("20.8.9", "20.9")]).toEqual([true, true, true, false]);
  });
});
