/**
 * Module maps of the base architectures a LoRA can target, built from each model's config
 * (reference/lora-formats.md §2a-2c). Each module has its native name (the name kohya/ComfyUI
 * use: sgm for SDXL, BFL for FLUX), the diffusers name(s) (a fused native module maps to several
 * row ranges), its weight shape [out, in] (conv: [out, in, kh, kw]) and whether trainers target it by
 * default. Names are never reversed by string replacement: lookups go through these tables. Pure.
 */
export type Component = "unet" | "transformer" | "te1" | "te2" | "te3";

export interface DiffusersPart {
  name: string;
  /** Row range [start, end) of the native weight this part covers. */
  start: number;
  end: number;
}

export interface ModuleSpec {
  component: Component;
  native: string;
  shape: number[];
  parts: DiffusersPart[];
  /** diffusers stores (scale, shift) where BFL stores (shift, scale): swap the halves of up's rows. */
  swapHalves?: boolean;
  /** Part of the attention/MLP set trainers adapt by default (coverage is reported against these). */
  defaultTarget: boolean;
}

export type ArchId = "sdxl" | "flux1" | "flux2-dev" | "flux2-klein-9b" | "flux2-klein-4b" | "qwen-image" | "zimage";

export interface Architecture {
  id: ArchId;
  title: string;
  modules: ModuleSpec[];
  /** Key prefixes per component in each family. */
  kohyaPrefix: Partial<Record<Component, string>>;
  diffusersPrefix: Partial<Record<Component, string>>;
  /** kohya ss_base_model_version / modelspec.architecture values. */
  modelspecArchitecture?: string;
}

const whole = (name: string, out: number): DiffusersPart[] => [{ name, start: 0, end: out }];

function split(names: string[], dims: number[]): DiffusersPart[] {
  let at = 0;
  return names.map((name, i) => {
    const part = { name, start: at, end: at + dims[i]! };
    at += dims[i]!;
    return part;
  });
}

function lin(component: Component, native: string, out: number, inp: number, diffusers: string | DiffusersPart[], defaultTarget = true): ModuleSpec {
  return { component, native, shape: [out, inp], parts: typeof diffusers === "string" ? whole(diffusers, out) : diffusers, defaultTarget };
}

function clip(component: Component, layers: number, hidden: number, mlp: number): ModuleSpec[] {
  const out: ModuleSpec[] = [];
  for (let i = 0; i < layers; i++) {
    const p = `text_model.encoder.layers.${i}`;
    for (const m of ["q_proj", "k_proj", "v_proj", "out_proj"]) out.push(lin(component, `${p}.self_attn.${m}`, hidden, hidden, `${p}.self_attn.${m}`));
    out.push(lin(component, `${p}.mlp.fc1`, mlp, hidden, `${p}.mlp.fc1`));
    out.push(lin(component, `${p}.mlp.fc2`, hidden, mlp, `${p}.mlp.fc2`));
  }
  return out;
}

function t5(component: Component, blocks: number, dModel: number, inner: number, ff: number): ModuleSpec[] {
  const out: ModuleSpec[] = [];
  for (let i = 0; i < blocks; i++) {
    const p = `encoder.block.${i}.layer`;
    for (const m of ["q", "k", "v"]) out.push(lin(component, `${p}.0.SelfAttention.${m}`, inner, dModel, `${p}.0.SelfAttention.${m}`));
    out.push(lin(component, `${p}.0.SelfAttention.o`, dModel, inner, `${p}.0.SelfAttention.o`));
    out.push(lin(component, `${p}.1.DenseReluDense.wi_0`, ff, dModel, `${p}.1.DenseReluDense.wi_0`));
    out.push(lin(component, `${p}.1.DenseReluDense.wi_1`, ff, dModel, `${p}.1.DenseReluDense.wi_1`));
    out.push(lin(component, `${p}.1.DenseReluDense.wo`, dModel, ff, `${p}.1.DenseReluDense.wo`));
  }
  return out;
}

/** SDXL base UNet (sgm names native) + CLIP-L (te1) + OpenCLIP bigG (te2). */
function sdxl(): Architecture {
  const modules: ModuleSpec[] = [];
  const ctx = 2048;
  const transformer = (sgm: string, diff: string, c: number, depth: number) => {
    modules.push(lin("unet", `${sgm}.proj_in`, c, c, `${diff}.proj_in`));
    modules.push(lin("unet", `${sgm}.proj_out`, c, c, `${diff}.proj_out`));
    for (let k = 0; k < depth; k++) {
      const s = `${sgm}.transformer_blocks.${k}`, d = `${diff}.transformer_blocks.${k}`;
      for (const a of ["attn1", "attn2"]) {
        const kv = a === "attn1" ? c : ctx;
        modules.push(lin("unet", `${s}.${a}.to_q`, c, c, `${d}.${a}.to_q`));
        modules.push(lin("unet", `${s}.${a}.to_k`, c, kv, `${d}.${a}.to_k`));
        modules.push(lin("unet", `${s}.${a}.to_v`, c, kv, `${d}.${a}.to_v`));
        modules.push(lin("unet", `${s}.${a}.to_out.0`, c, c, `${d}.${a}.to_out.0`));
      }
      modules.push(lin("unet", `${s}.ff.net.0.proj`, 8 * c, c, `${d}.ff.net.0.proj`));
      modules.push(lin("unet", `${s}.ff.net.2`, c, 4 * c, `${d}.ff.net.2`));
    }
  };
  const conv = (sgm: string, diff: string, out: number, inp: number, k: number) =>
    modules.push({ component: "unet", native: sgm, shape: [out, inp, k, k], parts: whole(diff, out), defaultTarget: false });
  const resnet = (sgm: string, diff: string, inp: number, out: number) => {
    conv(`${sgm}.in_layers.2`, `${diff}.conv1`, out, inp, 3);
    conv(`${sgm}.out_layers.3`, `${diff}.conv2`, out, out, 3);
    modules.push(lin("unet", `${sgm}.emb_layers.1`, out, 1280, `${diff}.time_emb_proj`, false));
    if (inp !== out) conv(`${sgm}.skip_connection`, `${diff}.conv_shortcut`, out, inp, 1);
  };
  const ch = [320, 640, 1280];
  const depth = [0, 2, 10];
  conv("input_blocks.0.0", "conv_in", 320, 4, 3);
  let prev = 320;
  const skips: number[] = [320];
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 2; j++) {
      const id = 3 * i + j + 1;
      resnet(`input_blocks.${id}.0`, `down_blocks.${i}.resnets.${j}`, prev, ch[i]!);
      prev = ch[i]!;
      if (depth[i]) transformer(`input_blocks.${id}.1`, `down_blocks.${i}.attentions.${j}`, ch[i]!, depth[i]!);
      skips.push(prev);
    }
    if (i < 2) {
      conv(`input_blocks.${3 * (i + 1)}.0.op`, `down_blocks.${i}.downsamplers.0.conv`, ch[i]!, ch[i]!, 3);
      skips.push(ch[i]!);
    }
  }
  resnet("middle_block.0", "mid_block.resnets.0", 1280, 1280);
  transformer("middle_block.1", "mid_block.attentions.0", 1280, 10);
  resnet("middle_block.2", "mid_block.resnets.1", 1280, 1280);
  prev = 1280;
  for (let i = 0; i < 3; i++) {
    const c = ch[2 - i]!;
    const d = depth[2 - i]!;
    for (let j = 0; j < 3; j++) {
      const id = 3 * i + j;
      const skip = skips.pop()!;
      resnet(`output_blocks.${id}.0`, `up_blocks.${i}.resnets.${j}`, prev + skip, c);
      prev = c;
      if (d) transformer(`output_blocks.${id}.1`, `up_blocks.${i}.attentions.${j}`, c, d);
    }
    if (i < 2) conv(`output_blocks.${3 * i + 2}.${d ? 2 : 1}.conv`, `up_blocks.${i}.upsamplers.0.conv`, c, c, 3);
  }
  modules.push(lin("unet", "time_embed.0", 1280, 320, "time_embedding.linear_1", false));
  modules.push(lin("unet", "time_embed.2", 1280, 1280, "time_embedding.linear_2", false));
  modules.push(lin("unet", "label_emb.0.0", 1280, 2816, "add_embedding.linear_1", false));
  modules.push(lin("unet", "label_emb.0.2", 1280, 1280, "add_embedding.linear_2", false));
  conv("out.2", "conv_out", 4, 320, 3);
  modules.push(...clip("te1", 12, 768, 3072), ...clip("te2", 32, 1280, 5120));
  return {
    id: "sdxl",
    title: "SDXL",
    modules,
    kohyaPrefix: { unet: "lora_unet_", te1: "lora_te1_", te2: "lora_te2_" },
    diffusersPrefix: { unet: "unet.", te1: "text_encoder.", te2: "text_encoder_2." },
    modelspecArchitecture: "stable-diffusion-xl-v1-base/lora",
  };
}

/** FLUX.1 [dev]/[schnell]: BFL names native; 19 double, 38 single blocks, hidden 3072. */
function flux1(): Architecture {
  const h = 3072, m = 12288;
  const T = "transformer" as const;
  const modules: ModuleSpec[] = [];
  for (let i = 0; i < 19; i++) {
    const n = `double_blocks.${i}`, d = `transformer_blocks.${i}`;
    modules.push(lin(T, `${n}.img_attn.qkv`, 3 * h, h, split([`${d}.attn.to_q`, `${d}.attn.to_k`, `${d}.attn.to_v`], [h, h, h])));
    modules.push(lin(T, `${n}.img_attn.proj`, h, h, `${d}.attn.to_out.0`));
    modules.push(lin(T, `${n}.img_mlp.0`, m, h, `${d}.ff.net.0.proj`));
    modules.push(lin(T, `${n}.img_mlp.2`, h, m, `${d}.ff.net.2`));
    modules.push(lin(T, `${n}.img_mod.lin`, 6 * h, h, `${d}.norm1.linear`));
    modules.push(lin(T, `${n}.txt_attn.qkv`, 3 * h, h, split([`${d}.attn.add_q_proj`, `${d}.attn.add_k_proj`, `${d}.attn.add_v_proj`], [h, h, h])));
    modules.push(lin(T, `${n}.txt_attn.proj`, h, h, `${d}.attn.to_add_out`));
    modules.push(lin(T, `${n}.txt_mlp.0`, m, h, `${d}.ff_context.net.0.proj`));
    modules.push(lin(T, `${n}.txt_mlp.2`, h, m, `${d}.ff_context.net.2`));
    modules.push(lin(T, `${n}.txt_mod.lin`, 6 * h, h, `${d}.norm1_context.linear`));
  }
  for (let i = 0; i < 38; i++) {
    const n = `single_blocks.${i}`, d = `single_transformer_blocks.${i}`;
    modules.push(lin(T, `${n}.linear1`, 3 * h + m, h, split([`${d}.attn.to_q`, `${d}.attn.to_k`, `${d}.attn.to_v`, `${d}.proj_mlp`], [h, h, h, m])));
    modules.push(lin(T, `${n}.linear2`, h, h + m, `${d}.proj_out`));
    modules.push(lin(T, `${n}.modulation.lin`, 3 * h, h, `${d}.norm.linear`));
  }
  modules.push(lin(T, "img_in", h, 64, "x_embedder", false));
  modules.push(lin(T, "txt_in", h, 4096, "context_embedder", false));
  modules.push(lin(T, "time_in.in_layer", h, 256, "time_text_embed.timestep_embedder.linear_1", false));
  modules.push(lin(T, "time_in.out_layer", h, h, "time_text_embed.timestep_embedder.linear_2", false));
  modules.push(lin(T, "vector_in.in_layer", h, 768, "time_text_embed.text_embedder.linear_1", false));
  modules.push(lin(T, "vector_in.out_layer", h, h, "time_text_embed.text_embedder.linear_2", false));
  modules.push(lin(T, "guidance_in.in_layer", h, 256, "time_text_embed.guidance_embedder.linear_1", false));
  modules.push(lin(T, "guidance_in.out_layer", h, h, "time_text_embed.guidance_embedder.linear_2", false));
  modules.push(lin(T, "final_layer.linear", 64, h, "proj_out", false));
  modules.push({ ...lin(T, "final_layer.adaLN_modulation.1", 2 * h, h, "norm_out.linear", false), swapHalves: true });
  modules.push(...clip("te1", 12, 768, 3072), ...t5("te3", 24, 4096, 4096, 10240));
  return {
    id: "flux1",
    title: "FLUX.1",
    modules,
    kohyaPrefix: { transformer: "lora_unet_", te1: "lora_te1_", te3: "lora_te3_" },
    diffusersPrefix: { transformer: "transformer.", te1: "text_encoder." },
    modelspecArchitecture: "flux-1-dev/lora",
  };
}

/** FLUX.2 dev / klein: BFL names, shared modulation, SwiGLU MLP; diffusers keeps linear1 fused. */
function flux2(id: ArchId, title: string, h: number, double: number, single: number, txtIn: number): Architecture {
  const m = 3 * h;
  const T = "transformer" as const;
  const modules: ModuleSpec[] = [];
  for (let i = 0; i < double; i++) {
    const n = `double_blocks.${i}`, d = `transformer_blocks.${i}`;
    modules.push(lin(T, `${n}.img_attn.qkv`, 3 * h, h, split([`${d}.attn.to_q`, `${d}.attn.to_k`, `${d}.attn.to_v`], [h, h, h])));
    modules.push(lin(T, `${n}.img_attn.proj`, h, h, `${d}.attn.to_out.0`));
    modules.push(lin(T, `${n}.img_mlp.0`, 2 * m, h, `${d}.ff.linear_in`));
    modules.push(lin(T, `${n}.img_mlp.2`, h, m, `${d}.ff.linear_out`));
    modules.push(lin(T, `${n}.txt_attn.qkv`, 3 * h, h, split([`${d}.attn.add_q_proj`, `${d}.attn.add_k_proj`, `${d}.attn.add_v_proj`], [h, h, h])));
    modules.push(lin(T, `${n}.txt_attn.proj`, h, h, `${d}.attn.to_add_out`));
    modules.push(lin(T, `${n}.txt_mlp.0`, 2 * m, h, `${d}.ff_context.linear_in`));
    modules.push(lin(T, `${n}.txt_mlp.2`, h, m, `${d}.ff_context.linear_out`));
  }
  for (let i = 0; i < single; i++) {
    const n = `single_blocks.${i}`, d = `single_transformer_blocks.${i}`;
    modules.push(lin(T, `${n}.linear1`, 3 * h + 2 * m, h, `${d}.attn.to_qkv_mlp_proj`));
    modules.push(lin(T, `${n}.linear2`, h, h + m, `${d}.attn.to_out`));
  }
  modules.push(lin(T, "double_stream_modulation_img.lin", 6 * h, h, "double_stream_modulation_img.linear", false));
  modules.push(lin(T, "double_stream_modulation_txt.lin", 6 * h, h, "double_stream_modulation_txt.linear", false));
  modules.push(lin(T, "single_stream_modulation.lin", 3 * h, h, "single_stream_modulation.linear", false));
  modules.push(lin(T, "img_in", h, 128, "x_embedder", false));
  modules.push(lin(T, "txt_in", h, txtIn, "context_embedder", false));
  modules.push(lin(T, "time_in.in_layer", h, 256, "time_guidance_embed.timestep_embedder.linear_1", false));
  modules.push(lin(T, "time_in.out_layer", h, h, "time_guidance_embed.timestep_embedder.linear_2", false));
  modules.push(lin(T, "guidance_in.in_layer", h, 256, "time_guidance_embed.guidance_embedder.linear_1", false));
  modules.push(lin(T, "guidance_in.out_layer", h, h, "time_guidance_embed.guidance_embedder.linear_2", false));
  modules.push(lin(T, "final_layer.linear", 128, h, "proj_out", false));
  modules.push({ ...lin(T, "final_layer.adaLN_modulation.1", 2 * h, h, "norm_out.linear", false), swapHalves: true });
  return { id, title, modules, kohyaPrefix: { transformer: "lora_unet_" }, diffusersPrefix: { transformer: "transformer." } };
}

/** Qwen-Image: diffusers names are native (60 blocks, inner 3072). */
function qwenImage(): Architecture {
  const h = 3072, T = "transformer" as const;
  const modules: ModuleSpec[] = [];
  for (let i = 0; i < 60; i++) {
    const b = `transformer_blocks.${i}`;
    for (const a of ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]) modules.push(lin(T, `${b}.attn.${a}`, h, h, `${b}.attn.${a}`));
    for (const s of ["img_mlp", "txt_mlp"]) {
      modules.push(lin(T, `${b}.${s}.net.0.proj`, 4 * h, h, `${b}.${s}.net.0.proj`));
      modules.push(lin(T, `${b}.${s}.net.2`, h, 4 * h, `${b}.${s}.net.2`));
    }
    modules.push(lin(T, `${b}.img_mod.1`, 6 * h, h, `${b}.img_mod.1`, false));
    modules.push(lin(T, `${b}.txt_mod.1`, 6 * h, h, `${b}.txt_mod.1`, false));
  }
  for (const [n, o, i] of [["img_in", h, 64], ["txt_in", h, 3584], ["time_text_embed.timestep_embedder.linear_1", h, 256], ["time_text_embed.timestep_embedder.linear_2", h, h], ["norm_out.linear", 2 * h, h], ["proj_out", 64, h]] as const) {
    modules.push(lin(T, n, o, i, n, false));
  }
  return { id: "qwen-image", title: "Qwen-Image", modules, kohyaPrefix: { transformer: "lora_unet_" }, diffusersPrefix: { transformer: "transformer." } };
}

/** Z-Image (Turbo): diffusers names native (30 layers, dim 3840, SwiGLU 10240, 2 refiners each). */
function zImage(): Architecture {
  const h = 3840, f = 10240, T = "transformer" as const;
  const modules: ModuleSpec[] = [];
  const block = (b: string, modulation: boolean, main: boolean) => {
    for (const a of ["to_q", "to_k", "to_v", "to_out.0"]) modules.push(lin(T, `${b}.attention.${a}`, h, h, `${b}.attention.${a}`, main));
    modules.push(lin(T, `${b}.feed_forward.w1`, f, h, `${b}.feed_forward.w1`, main));
    modules.push(lin(T, `${b}.feed_forward.w3`, f, h, `${b}.feed_forward.w3`, main));
    modules.push(lin(T, `${b}.feed_forward.w2`, h, f, `${b}.feed_forward.w2`, main));
    if (modulation) modules.push(lin(T, `${b}.adaLN_modulation.0`, 4 * h, 256, `${b}.adaLN_modulation.0`, false));
  };
  for (let i = 0; i < 30; i++) block(`layers.${i}`, true, true);
  for (let i = 0; i < 2; i++) block(`noise_refiner.${i}`, true, false);
  for (let i = 0; i < 2; i++) block(`context_refiner.${i}`, false, false);
  return { id: "zimage", title: "Z-Image", modules, kohyaPrefix: { transformer: "lora_unet_" }, diffusersPrefix: { transformer: "transformer." } };
}

let cache: Architecture[] | undefined;

/** All known architectures (built once). */
export function architectures(): Architecture[] {
  cache ??= [
    sdxl(),
    flux1(),
    flux2("flux2-dev", "FLUX.2 [dev]", 6144, 8, 48, 15360),
    flux2("flux2-klein-9b", "FLUX.2 [klein] 9B", 4096, 8, 24, 12288),
    flux2("flux2-klein-4b", "FLUX.2 [klein] 4B", 3072, 5, 20, 7680),
    qwenImage(),
    zImage(),
  ];
  return cache;
}

/** The module map of a base model (knowledge/base-models.ts id); none for a base without one (SD3.5). */
const ARCH_OF_BASE: Readonly<Record<string, ArchId>> = {
  sdxl: "sdxl",
  "flux1-dev": "flux1",
  "flux1-schnell": "flux1",
  "flux2-dev": "flux2-dev",
  "flux2-klein-4b": "flux2-klein-4b",
  "flux2-klein-9b": "flux2-klein-9b",
  "qwen-image": "qwen-image",
  "zimage-turbo": "zimage",
};

export function architectureOfBase(base: string): Architecture | undefined {
  const id = ARCH_OF_BASE[base];
  return id ? architecture(id) : undefined;
}

export function architecture(id: ArchId): Architecture {
  const a = architectures().find((x) => x.id === id);
  if (!a) throw new Error(`unknown architecture ${id}`);
  return a;
}
