import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import type { SampleJob } from "@loraspec/core/validate/plan-validation.js";
import { buildComfyWorkflow, createComfyuiSampler } from "@loraspec/engine/samplers/comfyui-sampler.js";
import { createFalSampler, falInput } from "@loraspec/engine/samplers/fal-sampler.js";
import { startSamplerEmulator, type SamplerEmulator } from "./sampler-emulators.js";

const settings = { width: 64, height: 64, steps: 4, guidance: 3.5 };
let emu: SamplerEmulator;
let dir: string;
let loraFile: string;

const jobs: SampleJob[] = [
  { id: "0001-base", prompt: "a photo of", seed: 1, adapters: [], label: "base" },
  {
    id: "0002-stack",
    prompt: "a photo of txcl",
    seed: 2,
    adapters: [
      { name: "me", path: "", weight: 0.5 },
      { name: "style", path: "https://example.com/style.safetensors", weight: 0.3 },
    ],
    label: "stack",
  },
];

beforeAll(async () => {
  emu = await startSamplerEmulator();
  dir = await mkdtemp(join(tmpdir(), "loraspec-samplers-"));
  loraFile = join(dir, "me.safetensors");
  await writeFile(loraFile, Buffer.from("not really a lora, bytes to upload"));
  jobs[1]!.adapters[0]!.path = loraFile;
});
afterAll(async () => {
  await emu.close();
  await rm(dir, { recursive: true, force: true });
});

describe("ComfyUI workflow", () => {
  it.each([
    [0, ["ckpt", 0]],
    [1, ["lora_1", 0]],
    [2, ["lora_2", 0]],
  ] as const)("%i adapters -> a LoraLoader chain feeding the sampler", (count, model) => {
    const job = { ...jobs[1]!, adapters: jobs[1]!.adapters.slice(0, count) };
    const wf = buildComfyWorkflow({ job, settings, checkpoint: "sdxl.safetensors", loraName: (p) => p.split("/").pop()! });
    expect(wf.sampler!.inputs.model).toEqual(model);
    expect(Object.values(wf).filter((n) => n.class_type === "LoraLoader")).toHaveLength(count);
    if (count === 2) {
      expect(wf.lora_2!.inputs).toMatchObject({ model: ["lora_1", 0], clip: ["lora_1", 1], lora_name: "style.safetensors", strength_model: 0.3, strength_clip: 0.3 });
      expect(wf.positive!.inputs.clip).toEqual(["lora_2", 1]);
    }
    expect(wf.sampler!.inputs).toMatchObject({ seed: 2, steps: 4, cfg: 3.5 });
  });
});

describe("ComfyUI sampler against an emulator of /prompt, /history, /view", () => {
  it("renders every job to <outDir>/<id>.png", async () => {
    const out = join(dir, "comfy");
    const sampler = createComfyuiSampler({ config: { url: emu.url, checkpoint: "sdxl.safetensors", pollMs: 1 } });
    const events = await collectEvents(sampler.render({ jobs, outDir: out, settings }));
    const samples = events.filter((e) => e.type === "sample");
    expect(samples.map((e) => e.type === "sample" && e.path)).toEqual([join(out, "0001-base.png"), join(out, "0002-stack.png")]);
    const meta = await sharp(await readFile(join(out, "0002-stack.png"))).metadata();
    expect(meta.format).toBe("png");
    const last = emu.comfyPrompts.at(-1)!.workflow;
    expect(last.lora_1!.inputs.lora_name).toBe("me.safetensors");
  });

  it("an abort while it waits between polls ends the render as E_CANCELLED at once", async () => {
    const controller = new AbortController();
    const sampler = createComfyuiSampler({ config: { url: emu.url, checkpoint: "x", pollMs: 60_000 } });
    const polls = emu.comfyPrompts.length;
    const render = collectEvents(sampler.render({ jobs: [jobs[0]!], outDir: join(dir, "c-abort"), settings, signal: controller.signal }));
    while (emu.comfyPrompts.length === polls) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50)); // the first /history answer (queued) came; now it sleeps
    controller.abort(); // a sleep that ignored it would hold the test for 60 s, past vitest's timeout
    await expect(render).rejects.toMatchObject({ code: "E_CANCELLED" });
  });

  it("a rejected workflow is E_REMOTE with the node errors", async () => {
    emu.rejectNextPrompt = true;
    const sampler = createComfyuiSampler({ config: { url: emu.url, checkpoint: "x", pollMs: 1 } });
    await expect(collectEvents(sampler.render({ jobs: [jobs[1]!], outDir: join(dir, "c2"), settings }))).rejects.toMatchObject({ code: "E_REMOTE" });
  });

  it("an unreachable server is E_REMOTE with a hint", async () => {
    const sampler = createComfyuiSampler({ config: { url: "http://127.0.0.1:9", checkpoint: "x" } });
    await expect(collectEvents(sampler.render({ jobs: [jobs[0]!], outDir: join(dir, "c3"), settings }))).rejects.toMatchObject({ code: "E_REMOTE", hint: expect.stringContaining("ComfyUI") });
  });
});

describe("fal sampler against an emulator of the queue and storage protocol", () => {
  it("maps adapters to loras [{path, scale}]", () => {
    expect(falInput(jobs[1]!, settings, (p) => `url:${p.split("/").pop()}`)).toMatchObject({
      prompt: "a photo of txcl",
      seed: 2,
      image_size: { width: 64, height: 64 },
      num_inference_steps: 4,
      guidance_scale: 3.5,
      loras: [{ path: "url:me.safetensors", scale: 0.5 }, { path: "url:style.safetensors", scale: 0.3 }],
    });
  });

  it.each(["fal-ai/flux-lora", "fal-ai/flux-2/lora"])("%s: uploads local LoRAs once and writes each image", async (endpoint) => {
    const before = emu.uploads.size;
    const out = join(dir, endpoint.replaceAll("/", "_"));
    const sampler = createFalSampler({ config: { endpoint, credentials: "key-id:secret", pollIntervalMs: 1 }, fetch: emu.fetch });
    const events = await collectEvents(sampler.render({ jobs: [jobs[0]!, jobs[1]!, { ...jobs[1]!, id: "0003-again", seed: 3 }], outDir: out, settings }));
    expect(events.filter((e) => e.type === "sample")).toHaveLength(3);
    expect(emu.uploads.size - before).toBe(1);
    const req = emu.falRequests.filter((r) => r.endpoint === endpoint).at(-1)!;
    expect(req.authorization).toBe("Key key-id:secret");
    expect((req.input.loras as { path: string }[])[0]!.path).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/files\//);
    expect((req.input.loras as { path: string }[])[1]!.path).toBe("https://example.com/style.safetensors");
    expect((await sharp(await readFile(join(out, "0003-again.png"))).metadata()).format).toBe("png");
  });

  it("without a key it is E_REMOTE_AUTH before any request", async () => {
    const sampler = createFalSampler({ config: { endpoint: "fal-ai/flux-lora" }, fetch: emu.fetch });
    const n = emu.falRequests.length;
    await expect(collectEvents(sampler.render({ jobs, outDir: join(dir, "f3"), settings }))).rejects.toMatchObject({ code: "E_REMOTE_AUTH" });
    expect(emu.falRequests.length).toBe(n);
  });
});
