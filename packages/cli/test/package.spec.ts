// The npm package, as a user gets it: `npm pack` here, `npm install -g` of the tarball into a
// temporary prefix, then the installed `loraspec` run from a folder outside the repository, so the
// package cannot silently depend on the clone (its sources, node_modules, worker/.venv, models/).
import { spawnSync, type SpawnSyncOptions } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = fileURLToPath(new URL("../../..", import.meta.url));
const version = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")).version as string;
const SECRET = "hf_package_test_secret_never_printed";

// The child sees none of this session's loraspec or npm settings (npm run sets npm_config_*).
const cleanEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith("npm_") && !k.startsWith("LORASPEC_") && k !== "NODE_PATH" && !k.startsWith("HF_") && k !== "FAL_KEY"),
) as Record<string, string>;

function sh(cmd: string, args: string[], options: SpawnSyncOptions & { env?: Record<string, string> } = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", ...options, env: { ...cleanEnv, NO_COLOR: "1", ...options.env } });
  return { code: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

let tmp: string;
let files: string[];
let tarball: string;
let loraspec: string;
let project: string;
let cache: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "loraspec-package-"));
  // prepack (scripts/prepack.mjs) builds lib/, the worker wheel and, unless built, the web page.
  const pack = sh("npm", ["pack", "--json", "--pack-destination", tmp], { cwd: repo, env: { LORASPEC_PACK_REUSE_WEB: "1" } });
  if (pack.code !== 0) throw new Error(`npm pack failed:\n${pack.stderr.slice(-2000)}`);
  const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  files = info!.files.map((f) => f.path);
  tarball = join(tmp, info!.filename);
  // --ignore-scripts: better-sqlite3's install script fetches or compiles its native binary
  // (minutes on a small CPU); none of the commands below opens the run store. sharp's binary
  // comes from its @img/* packages, without scripts. The registry is reached only for what the
  // npm cache lacks.
  const prefix = join(tmp, "prefix");
  const install = sh("npm", ["install", "-g", "--prefix", prefix, "--prefer-offline", "--ignore-scripts", "--no-audit", "--no-fund", tarball], { cwd: tmp });
  if (install.code !== 0) throw new Error(`npm install of the tarball failed:\n${install.stderr.slice(-2000)}`);
  loraspec = join(prefix, "bin", "loraspec");
  project = join(tmp, "project");
  cache = join(tmp, "cache");
  mkdirSync(project);
  cpSync(join(repo, "examples", "character", "dataset"), join(project, "dataset"), { recursive: true });
}, 240_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const run = (args: string[], env: Record<string, string> = {}) => sh(loraspec, args, { cwd: project, env: { LORASPEC_CACHE_DIR: cache, ...env } });

describe("the npm package", () => {
  it("ships the built CLI, the page, the schema, the worker wheel and its pins, and no sources", () => {
    for (const want of ["bin/loraspec.mjs", "lib/cli.mjs", "packages/web/dist/index.html", "schema/lora-contract.schema.json", "worker/requirements.txt", "examples/character/lora.yaml", "README.md", "package.json"]) {
      expect(files, want).toContain(want);
    }
    expect(files.filter((f) => /^worker\/loraspec_worker-.+-py3-none-any\.whl$/.test(f))).toEqual([`worker/loraspec_worker-${version}-py3-none-any.whl`]);
    const unwanted = files.filter((f) => /\.tsx?$|\.map$|^packages\/[^/]+\/(src|test)\/|^models\/|^worker\/(loraspec_worker|tests)\/|node_modules\/|\.venv\//.test(f));
    expect(unwanted).toEqual([]);
    expect(files.length).toBeLessThan(200);
  });

  it("runs --version, init, check and plan from outside the repository", () => {
    const v = run(["--version"]);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(version);
    const init = run(["init", "--base", "flux1-dev", "--target", "character", "--trigger", "txcl", "--gpu", "RTX 4090", "--price-per-hour", "0.7"]);
    expect(init.code, init.stderr).toBe(0);
    expect(readFileSync(join(project, "lora.yaml"), "utf8")).toMatch(/^trigger:\n  word: txcl$/m);
    const check = run(["check"]);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toContain("20 images");
    const plan = run(["plan", "--json"]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(JSON.parse(plan.stdout).plan).toMatchObject({ steps: 2000, images: { count: 20 } });
  });

  it("doctor says the worker venv is missing, where it goes and how to install it", () => {
    const json = run(["doctor", "--json"], { HF_TOKEN: SECRET });
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as { items: { id: string; status: string; fix?: string; details?: { venv?: string; layout?: string } }[] };
    const worker = report.items.find((item) => item.id === "worker");
    expect(worker).toMatchObject({ status: "missing", fix: "loraspec setup worker", details: { layout: "package", venv: join(cache, "worker", "venv") } });
    expect(report.items.find((item) => item.id === "hf-token")?.status).toBe("ok");
    expect(json.stdout).not.toContain(SECRET);
    const plain = run(["doctor"]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/^missing +Python worker +no venv at .*\n +fix: loraspec setup worker$/m);
    expect(existsSync(join(cache, "worker"))).toBe(false); // doctor only looks
  });
});
