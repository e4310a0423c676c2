import { cp, readdir, stat } from "node:fs/promises";
import { dirname, join, resolve, basename } from "node:path";
import { Hono } from "hono";
import { LoraspecError, isLoraspecError } from "@loraspec/core/errors.js";
import { atomicWrite } from "../../fs/atomic-write.js";
import { FILE_LIMITS } from "../../fs/file-limits.js";
import { readSmallText } from "../../fs/read-small-file.js";
import { checkUnchanged, requireBase } from "../guarded-write.js";
import type { AppContext } from "../app-context.js";
import type { ContractResponse, ProjectResponse } from "../api-types.js";
import type { ServerDeps } from "../deps.js";
import { notSupported, readJson, requireString } from "../http-helpers.js";
import { contractBasics, readContractText } from "../project-files.js";
import { planScans } from "./dataset-scan.js";

/** The project, its contract (read, write), live lint and plan: mounted at /api. */
export function projectRoutes(ctx: AppContext) {
  const { params, contractFile, contractRel, projectDir } = ctx;
  const parse = (text: string) => params.parseContract?.({ text, file: contractRel });

  return new Hono()
    .get("/project", async (c) => {
      const exists = await stat(contractFile).then(() => true, () => false);
      const examples = params.examplesDir ? await listExamples(params.examplesDir) : [];
      const body: ProjectResponse = {
        name: basename(projectDir),
        id: ctx.projectId,
        contractFile: contractRel,
        hasContract: exists,
        examples,
        capabilities: capabilities(params),
        filesBase: `/pf/${ctx.filesKey}/`,
      };
      return c.json(body);
    })
    .post("/project/from-example", async (c) => {
      const body = await readJson<{ example?: unknown }>(c);
      const name = requireString(body.example, "example");
      if (!params.examplesDir) throw notSupported("Examples");
      if (!(await listExamples(params.examplesDir)).includes(name)) throw new LoraspecError("E_USAGE", `Unknown example "${name}".`, { field: "example" });
      // An example is a folder with lora.yaml (and its dataset), or a single .yaml file.
      const source = /\.ya?ml$/.test(name) ? join(params.examplesDir, name) : join(params.examplesDir, name, "lora.yaml");
      const text = await readSmallText({ file: source, limit: FILE_LIMITS.contract, shown: name }).catch(() => {
        throw new LoraspecError("E_FILE_NOT_FOUND", `Unknown example "${name}".`, { field: "example" });
      });
      const exists = await stat(contractFile).then(() => true, () => false);
      if (exists) throw new LoraspecError("E_FILE_EXISTS", `${contractRel} already exists; it is never overwritten.`, { file: contractRel });
      // The example's dataset comes along when it is a folder beside the example.
      const rel = contractBasics(text).datasetPath;
      const datasetSource = resolve(dirname(source), rel);
      const datasetTarget = await ctx.inside(rel.replace(/^\.\//, ""));
      if (await stat(datasetSource).then((s) => s.isDirectory(), () => false)) {
        if (!(await stat(datasetTarget).then(() => true, () => false))) {
          await cp(datasetSource, datasetTarget, { recursive: true, errorOnExist: true, force: false });
        }
      }
      await atomicWrite(contractFile, text);
      return c.json({ created: contractRel });
    })
    .get("/contract", async (c) => {
      const text = await readContractText(contractFile, contractRel);
      let contract: unknown;
      let error: unknown;
      try {
        contract = parse(text);
      } catch (e) {
        if (!isLoraspecError(e)) throw e;
        error = e.toJSON();
      }
      const body: ContractResponse = { file: contractRel, yaml: text, contract, error };
      return c.json(body);
    })
    .put("/contract", async (c) => {
      const body = await readJson<{ yaml?: unknown; base?: unknown }>(c);
      const text = requireString(body.yaml, "yaml");
      const base = requireBase(body.base, "base");
      // Only a contract that parses is written: a half-typed form never replaces a good file.
      const contract = parse(text);
      // Nor one that changed on disk since the page read it (E_FILE_CHANGED, 409).
      await checkUnchanged({ file: contractFile, rel: contractRel, base, limit: FILE_LIMITS.contract });
      await atomicWrite(contractFile, text);
      return c.json({ file: contractRel, contract });
    })
    .post("/lint", async (c) => {
      if (!params.lint || !params.parseContract) throw notSupported("Lint");
      const body = await readJson<{ yaml?: unknown }>(c);
      const contract = params.parseContract({ text: requireString(body.yaml, "yaml"), file: contractRel });
      return c.json({ findings: await params.lint({ contract, ...(await planScans(ctx, contract, c.req.raw.signal)) }) });
    })
    .post("/plan", async (c) => {
      if (!params.plan || !params.parseContract) throw notSupported("Plan");
      const body = await readJson<{ yaml?: unknown }>(c);
      const contract = params.parseContract({ text: requireString(body.yaml, "yaml"), file: contractRel });
      return c.json({ plan: params.plan({ contract, ...(await planScans(ctx, contract, c.req.raw.signal)) }) });
    });
}

function capabilities(deps: ServerDeps): Record<string, boolean> {
  return {
    lint: Boolean(deps.lint),
    plan: Boolean(deps.plan),
    scanDataset: Boolean(deps.scanDataset),
    autoCaption: Boolean(deps.autoCaption),
    runs: Boolean(deps.runs),
    lora: Boolean(deps.lora),
    validation: Boolean(deps.validation),
  };
}

/** Example folders that hold a lora.yaml, and loose example .yaml files, by name. */
async function listExamples(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const e of entries) {
    if (e.isFile() && /^[A-Za-z0-9._-]+\.ya?ml$/.test(e.name)) out.push(e.name);
    else if (e.isDirectory() && /^[A-Za-z0-9._-]+$/.test(e.name) && (await stat(join(dir, e.name, "lora.yaml")).then((s) => s.isFile(), () => false))) {
      out.push(e.name);
    }
  }
  return out.sort();
}
