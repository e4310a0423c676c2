import { Hono } from "hono";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { AppContext } from "../app-context.js";
import type { LoraFilesResponse } from "../api-types.js";
import { notSupported, readJson, requireString } from "../http-helpers.js";
import { findFiles } from "../project-files.js";
import { projectRelative } from "../../fs/safe-path.js";

/** Merge methods (engine/lora/merge-lora.ts): cat is exact; the others run in the worker. */
const MERGE_METHODS = ["cat", "linear", "ties", "dare", "svd"];

/** LoRA files of the project: list, inspect, convert, merge. Mounted at /api/lora. */
export function loraRoutes(ctx: AppContext) {
  const lora = () => {
    if (!ctx.params.lora) throw notSupported("LoRA tools");
    return ctx.params.lora;
  };
  const safetensorsOut = async (value: unknown) => {
    const out = await ctx.inside(requireString(value, "out"));
    if (!out.endsWith(".safetensors")) throw new LoraspecError("E_USAGE", "The output must be a .safetensors file.", { field: "out" });
    return out;
  };
  return new Hono()
    .get("/files", async (c) =>
      c.json<LoraFilesResponse>({ files: await findFiles({ dir: ctx.projectDir, match: (n) => n.endsWith(".safetensors"), skipHidden: true, maxDepth: 8 }) }),
    )
    .post("/inspect", async (c) => {
      const body = await readJson<{ path?: unknown }>(c);
      return c.json({ result: await lora().inspect({ path: await ctx.inside(requireString(body.path, "path")) }) });
    })
    .post("/convert", async (c) => {
      const body = await readJson<{ path?: unknown; to?: unknown; out?: unknown }>(c);
      const out = await safetensorsOut(body.out);
      const result = await lora().convert({ path: await ctx.inside(requireString(body.path, "path")), to: requireString(body.to, "to"), out });
      return c.json({ result, out: projectRelative(ctx.projectDir, out) });
    })
    .post("/merge", async (c) => {
      const body = await readJson<{ inputs?: unknown; out?: unknown; method?: unknown; to?: unknown }>(c);
      if (!Array.isArray(body.inputs) || body.inputs.length === 0) throw new LoraspecError("E_USAGE", '"inputs" must list {path, weight}.', { field: "inputs" });
      const inputs = [];
      for (const item of body.inputs as Array<{ path?: unknown; weight?: unknown }>) {
        const weight = Number(item?.weight);
        if (!Number.isFinite(weight)) throw new LoraspecError("E_USAGE", "Each input needs a numeric weight.", { field: "inputs[].weight" });
        inputs.push({ path: await ctx.inside(requireString(item?.path, "inputs[].path")), weight });
      }
      const out = await safetensorsOut(body.out);
      const method = body.method === undefined ? "cat" : requireString(body.method, "method");
      if (!MERGE_METHODS.includes(method)) throw new LoraspecError("E_USAGE", `"method" must be one of ${MERGE_METHODS.join(", ")}.`, { field: "method" });
      if (inputs.some((i) => i.path === out)) throw new LoraspecError("E_USAGE", "The output would overwrite an input.", { field: "out" });
      const to = typeof body.to === "string" && body.to ? body.to : undefined;
      return c.json({ result: await lora().merge({ inputs, out, method, to }), out: projectRelative(ctx.projectDir, out) });
    });
}
