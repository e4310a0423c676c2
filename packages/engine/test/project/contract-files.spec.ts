import { existsSync, readFileSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { baseSource } from "@loraspec/core/contract/base-path.js";
import { checkProject } from "@loraspec/engine/project/check-project.js";
import { contractFiles, type ContractFile } from "@loraspec/engine/contract/contract-files.js";
import { loadContract, resolveDatasetDir } from "@loraspec/engine/contract/load-contract.js";
import { resolveStack } from "@loraspec/engine/validate/validate-project.js";

// Every contract field that names a file or folder (contract/contract-files.ts): missing, check flags it naming the
// field; present, check passes it and the consumer (prep/train's dataset folder, train's reg folder, validate's stack,
// the base) finds it at the path check looked at. Check runs from another folder than the contract's, so a
// relative path read from the current folder would miss. Before, a missing validation.stack LoRA passed check and
// validate stopped at it.

const root = fileURLToPath(new URL("../../../..", import.meta.url));
let tmp: string;
let contractPath: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-contract-files-"));
  const proj = join(tmp, "proj");
  await mkdir(join(proj, "stack"), { recursive: true });
  const toy = join(root, "examples", "toyworld");
  await cp(join(toy, "character"), join(proj, "character"), { recursive: true });
  await cp(join(toy, "character"), join(proj, "prior"), { recursive: true });
  await symlink(join(root, "models", "toy-sdxl"), join(proj, "base"));
  await writeFile(join(proj, "stack", "a.safetensors"), "a");
  await writeFile(join(proj, "stack", "b.safetensors"), "b");
  const contract = YAML.parse(await readFile(join(toy, "lora.yaml"), "utf8")) as Record<string, any>;
  contract.base.path = "./base";
  contract.dataset.reg_path = "./prior";
  contract.validation.stack = [
    { lora: "./stack/a.safetensors", weight: 0.2 },
    { lora: "stack/b.safetensors", weight: 0.2 },
  ];
  contract.validation.self_weight = 0.6;
  contractPath = join(proj, "lora.yaml");
  await writeFile(contractPath, YAML.stringify(contract));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** The contract's file fields, the current folder elsewhere (check and the consumers must not read it). */
async function files(): Promise<{ list: ContractFile[]; dir: string }> {
  const loaded = await loadContract({ path: contractPath, cwd: tmpdir() });
  return { list: contractFiles(loaded.contract, loaded.dir), dir: loaded.dir };
}

/** What check says about `field`: its coded error's field, or its error findings' fields and messages. */
async function checkSays(): Promise<{ thrown?: { code: string; field?: string; message: string }; errors: Array<{ rule: string; field?: string; message: string }> }> {
  try {
    const r = await checkProject({ path: "proj/lora.yaml", cwd: tmp, env: { ...process.env, HF_HUB_OFFLINE: "1" } });
    return { errors: r.findings.filter((f) => f.severity === "error").map((f) => ({ rule: f.rule, field: f.field, message: f.message })) };
  } catch (error) {
    if (!isLoraspecError(error)) throw error;
    return { thrown: { code: error.code, field: error.field, message: error.message }, errors: [] };
  }
}

describe("contract fields that name files: check and the consumers resolve them alike", () => {
  it("contractFiles lists every file-naming field of the contract schema", async () => {
    // The JSON Schema's properties named like a path or file (path, reg_path, lora, *_file): a new one fails here.
    const schema = JSON.parse(readFileSync(join(root, "schema", "lora-contract.schema.json"), "utf8")) as Record<string, unknown>;
    const named: string[] = [];
    const walk = (node: any, at: string) => {
      if (!node || typeof node !== "object") return;
      for (const [key, child] of Object.entries<any>(node.properties ?? {})) {
        const field = at ? `${at}.${key}` : key;
        if (/(^|_)path$|^lora$|_file$|_files$/.test(key)) named.push(field);
        walk(child, field);
        if (child?.items) walk(child.items, `${field}[]`);
        for (const alt of child?.anyOf ?? []) walk(alt, field);
      }
    };
    walk(schema, "");
    const { list } = await files();
    expect([...new Set(list.map((f) => f.field.replace(/\[\d+\]/g, "[]")))].sort()).toEqual([...new Set(named)].sort());
  });

  it("all present: check has no error on them, and each consumer finds the file check looked at", async () => {
    const { list, dir } = await files();
    const says = await checkSays();
    expect(says.thrown).toBeUndefined();
    expect(says.errors.filter((e) => list.some((f) => f.field === e.field))).toEqual([]);
    for (const f of list) expect(existsSync(f.path!), `${f.field}: ${f.path}`).toBe(true);
    const loaded = await loadContract({ path: contractPath, cwd: tmpdir() });
    // prep, train and validate's reference images read the dataset folder here.
    expect(resolveDatasetDir(loaded)).toBe(list.find((f) => f.field === "dataset.path")!.path);
    // validate's stack check.
    expect(resolveStack(loaded.contract.validation.stack, dir, contractPath).map((s) => s.lora)).toEqual(list.filter((f) => f.field.startsWith("validation.stack")).map((f) => f.path));
    // train's worker request, the Kohya/ai-toolkit configs, validate and sample (base-path.ts).
    const base = baseSource(loaded.contract.base.path!, { contractDir: dir, home: homedir() });
    expect(base.kind === "local" ? base.path : undefined).toBe(list.find((f) => f.field === "base.path")!.path);
  }, 120_000);

  const fields = ["base.path", "dataset.path", "dataset.reg_path", "validation.stack[0].lora", "validation.stack[1].lora"];
  it.each(fields)("%s missing: check flags it naming the field and the path; the consumer would not find it", async (field) => {
    const { list, dir } = await files();
    const f = list.find((x) => x.field === field)!;
    expect(f, field).toBeDefined();
    await rename(f.path!, `${f.path}.gone`);
    try {
      const says = await checkSays();
      const named = says.thrown && says.thrown.field === field ? says.thrown : says.errors.find((e) => e.field === field);
      expect(named, JSON.stringify(says)).toBeDefined();
      expect(named!.message.includes(f.path!) || named!.message.includes(f.value), named!.message).toBe(true);
      if (field.startsWith("validation.stack")) {
        expect(says.errors.find((e) => e.field === field)?.rule).toBe("validation-stack-missing");
        const loaded = await loadContract({ path: contractPath, cwd: tmpdir() });
        let refused: unknown;
        try {
          resolveStack(loaded.contract.validation.stack, dir, contractPath);
        } catch (error) {
          refused = error;
        }
        expect(refused).toMatchObject({ code: "E_FILE_NOT_FOUND", field });
      }
    } finally {
      await rename(`${f.path}.gone`, f.path!);
    }
  }, 120_000);

  it("a URL in validation.stack is not a local file: check does not look for it", async () => {
    const loaded = await loadContract({ path: contractPath, cwd: tmpdir() });
    const c = { ...loaded.contract, validation: { ...loaded.contract.validation, stack: [{ lora: "https://example.com/x.safetensors", weight: 0.2 }] } };
    expect(contractFiles(c, loaded.dir).find((f) => f.field === "validation.stack[0].lora")).toMatchObject({ path: undefined });
  });
});
