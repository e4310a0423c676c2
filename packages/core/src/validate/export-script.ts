import { adapterName, variationPrompts, withoutTrigger, withTrigger, type RubricSpec, type ValidationTarget } from "./plan-validation.js";

export interface ExportScriptParams {
  name: string;
  /** Hugging Face id or local folder of the base model (diffusers format). */
  base: string;
  lora: string;
  trigger: string;
  target: ValidationTarget;
  rubric: RubricSpec;
  width: number;
  height: number;
  steps: number;
  guidance?: number;
  /** ISO date shown in the header. */
  date: string;
}

/** The rubric's failure symptoms, written into the script as comments (issue 7's rubric). */
const SYMPTOMS = [
  "1. Trigger fires: compare each with/without pair at equal seeds.",
  "   FAILURE: no visible difference (the trigger was never learned, or the LoRA did not load:",
  "   check the log for 'No LoRA keys associated' / unused keys).",
  "   FAILURE: the subject shows in the without-trigger images too, where the base model's",
  "   without-trigger images show none (a leak: the trigger was never bound, e.g. captions",
  "   without it, or no regularisation images).",
  "2. Subject consistency across poses: the variations grid.",
  "   FAILURE: the same face and pose every time, i.e. mode collapse onto one training image",
  "   (too many steps or too high a learning rate; pick an earlier checkpoint).",
  "3. Composition with the base: the novel scenes grid.",
  "   FAILURE: the subject only appears in its original photos' backgrounds (overfit), or the scene",
  "   text is ignored.",
  "4. Stacking: the stack grid, each LoRA at its contract weight, combined weight <= 1.0.",
  "   FAILURE: the subject or the style disappears; above 2-3 adapters expect interference.",
  "5. Weight sweep: the same trigger prompts at each weight.",
  "   Pick the lowest weight where checks 1-3 hold; burned colours or artifacts at 1.0 mean the",
  "   LoRA is overtrained.",
];

/** JSON inside a Python triple-quoted string: escape backslashes and any triple quote. */
function pyJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/\\/g, "\\\\").replace(/"""/g, '\\"\\"\\"');
}

/**
 * A standalone, readable diffusers script that renders the rubric's images for people who want
 * it outside loraspec: load_lora_weights, set_adapters with weights, the sweep, trigger on/off
 * pairs, variations, scenes, the stack, and a contact sheet per check. The data is one JSON
 * block (serialised with JSON.stringify); the code around it is fixed.
 */
export function exportValidationScript(p: ExportScriptParams): string {
  const { config, stack } = scriptConfig(p);
  return [
    ...scriptHeader(p, stack),
    ...PY_IMPORTS,
    `CONFIG = json.loads("""${pyJson(config)}""")`,
    ...PY_HELPERS,
    ...PY_MAIN,
  ].join("\n");
}

/** The data block: every prompt, seed, weight and adapter the script renders (the stack's adapters named uniquely). */
function scriptConfig(p: ExportScriptParams) {
  const seeds = p.rubric.seeds.length > 0 ? p.rubric.seeds : [1];
  const taken = new Set<string>(["subject"]);
  const stack = p.rubric.stack.map((s) => {
    const name = adapterName(s.lora, taken);
    taken.add(name);
    return { name, path: s.lora, weight: s.weight };
  });
  const config = {
    name: p.name,
    base: p.base,
    lora: p.lora,
    trigger: p.trigger,
    seeds,
    weight_sweep: p.rubric.weight_sweep,
    self_weight: p.rubric.self_weight,
    trigger_pairs: (p.rubric.trigger_prompts.length > 0 ? p.rubric.trigger_prompts : ["a photo of {trigger}"]).map((t) => ({
      with: withTrigger(t, p.trigger),
      without: withoutTrigger(t, p.trigger),
    })),
    variations: variationPrompts(p.target, p.trigger, p.rubric.pose_variations, p.rubric.variation_prompts),
    novel_scenes: p.rubric.novel_scenes.map((s) => withTrigger(s, p.trigger)),
    stack,
    width: p.width,
    height: p.height,
    steps: p.steps,
    guidance_scale: p.guidance ?? null,
  };
  return { config, stack };
}

/** The shebang, the docstring (what it renders, how to run it) and the rubric's failure symptoms as comments. */
function scriptHeader(p: ExportScriptParams, stack: ReadonlyArray<{ weight: number }>): string[] {
  const combined = Number((p.rubric.self_weight + stack.reduce((a, s) => a + s.weight, 0)).toFixed(6));
  return [
    "#!/usr/bin/env python3",
    `"""Validation images for the LoRA ${JSON.stringify(p.name).slice(1, -1).replace(/"""/g, "")}, exported by loraspec on ${p.date}.`,
    "",
    "Renders the contract's validation rubric with diffusers so you can check it by eye:",
    "trigger on/off pairs at every sweep weight, pose variations, novel scenes and the LoRA stack,",
    "plus the base model's images for comparison and one contact sheet per check.",
    "",
    "    pip install torch diffusers peft transformers safetensors",
    "    python validate.py [--base PATH_OR_HF_ID] [--out validation] [--device cuda] [--steps N] [--guidance X]",
    '"""',
    "",
    "# What to look for (the failure symptoms of each check):",
    ...SYMPTOMS.map((s) => `#   ${s}`),
    ...(combined > 1 ? [`#   NOTE: this stack's weights add up to ${combined} (> 1.0).`] : []),
    ...(stack.length + 1 > 2 ? [`#   NOTE: ${stack.length + 1} adapters stacked (the guide warns above 2-3).`] : []),
  ];
}

/** The imports, after the header's comments. */
const PY_IMPORTS = [
  "",
  "import argparse",
  "import json",
  "import os",
  "",
  "import torch",
  "from diffusers import DiffusionPipeline",
  "from PIL import Image",
  "",
];

/** render (one image, seeded on the CPU), contact_sheet (one per check) and use (which adapters, at which weights). */
const PY_HELPERS = [
  "",
  "",
  "def render(pipe, prompt, seed, path, args):",
  "    kwargs = {\"num_inference_steps\": args.steps, \"width\": args.width, \"height\": args.height}",
  "    if args.guidance is not None:",
  "        kwargs[\"guidance_scale\"] = args.guidance",
  "    generator = torch.Generator(device=\"cpu\").manual_seed(seed)  # same seed => same noise, on any device",
  "    image = pipe(prompt=prompt, generator=generator, **kwargs).images[0]",
  "    image.save(path)",
  "    print(f\"{path}: {prompt!r} seed {seed}\")",
  "    return path",
  "",
  "",
  "def contact_sheet(rows, path):",
  "    \"\"\"rows: lists of image paths; one row per line of the sheet.\"\"\"",
  "    images = [[Image.open(p) for p in row] for row in rows if row]",
  "    if not images:",
  "        return",
  "    w, h = images[0][0].size",
  "    sheet = Image.new(\"RGB\", (w * max(len(r) for r in images), h * len(images)), \"white\")",
  "    for y, row in enumerate(images):",
  "        for x, im in enumerate(row):",
  "            sheet.paste(im, (x * w, y * h))",
  "    sheet.save(path)",
  "    print(f\"contact sheet: {path}\")",
  "",
  "",
  "def use(pipe, adapters):",
  "    \"\"\"adapters: [(name, weight)]; none = the base model alone.\"\"\"",
  "    if not adapters:",
  "        pipe.disable_lora()",
  "        return",
  "    pipe.enable_lora()",
  "    pipe.set_adapters([n for n, _ in adapters], adapter_weights=[w for _, w in adapters])",
  "",
  "",
];

/** main(): loads the base and the LoRAs, then renders checks 1 + 5, 2, 3 and 4 with a contact sheet each. */
const PY_MAIN = [
  "def main():",
  "    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])",
  "    parser.add_argument(\"--base\", default=CONFIG[\"base\"], help=\"Hugging Face id or local diffusers folder\")",
  "    parser.add_argument(\"--lora\", default=CONFIG[\"lora\"])",
  "    parser.add_argument(\"--out\", default=\"validation\")",
  "    parser.add_argument(\"--device\", default=\"cuda\" if torch.cuda.is_available() else \"cpu\")",
  "    parser.add_argument(\"--steps\", type=int, default=CONFIG[\"steps\"])",
  "    parser.add_argument(\"--guidance\", type=float, default=CONFIG[\"guidance_scale\"], help=\"guidance scale (default: the base's, as its training samples)\")",
  "    parser.add_argument(\"--width\", type=int, default=CONFIG[\"width\"])",
  "    parser.add_argument(\"--height\", type=int, default=CONFIG[\"height\"])",
  "    args = parser.parse_args()",
  "",
  "    dtype = torch.bfloat16 if args.device.startswith(\"cuda\") else torch.float32",
  "    pipe = DiffusionPipeline.from_pretrained(args.base, torch_dtype=dtype).to(args.device)",
  "    pipe.set_progress_bar_config(disable=True)",
  "    # diffusers reads diffusers/PEFT and Kohya-format LoRA files alike; a LoRA whose keys do not",
  "    # match this base logs 'No LoRA keys associated ...' and changes nothing (check 1 fails).",
  "    pipe.load_lora_weights(args.lora, adapter_name=\"subject\")",
  "    for other in CONFIG[\"stack\"]:",
  "        pipe.load_lora_weights(other[\"path\"], adapter_name=other[\"name\"])",
  "    os.makedirs(args.out, exist_ok=True)",
  "    out = lambda name: os.path.join(args.out, name)  # noqa: E731",
  "",
  "    # 1 + 5. Trigger on/off pairs at every sweep weight, and the base model's pairs.",
  "    sweep_rows = []",
  "    for weight in CONFIG[\"weight_sweep\"]:",
  "        use(pipe, [(\"subject\", weight)])",
  "        for i, pair in enumerate(CONFIG[\"trigger_pairs\"]):",
  "            for seed in CONFIG[\"seeds\"]:",
  "                on = render(pipe, pair[\"with\"], seed, out(f\"trigger_w{weight}_p{i}_s{seed}_on.png\"), args)",
  "                off = render(pipe, pair[\"without\"], seed, out(f\"trigger_w{weight}_p{i}_s{seed}_off.png\"), args)",
  "                sweep_rows.append([on, off])",
  "    use(pipe, [])",
  "    base_rows = []",
  "    for i, pair in enumerate(CONFIG[\"trigger_pairs\"]):",
  "        for seed in CONFIG[\"seeds\"]:",
  "            base_rows.append([",
  "                render(pipe, pair[\"with\"], seed, out(f\"base_p{i}_s{seed}_on.png\"), args),",
  "                render(pipe, pair[\"without\"], seed, out(f\"base_p{i}_s{seed}_off.png\"), args),",
  "            ])",
  "    contact_sheet(sweep_rows + base_rows, out(\"sheet_1_trigger_and_5_sweep.png\"))",
  "",
  "    # 2. Pose variations at full weight (look for the same face and pose every time).",
  "    use(pipe, [(\"subject\", 1.0)])",
  "    seeds = CONFIG[\"seeds\"]",
  "    variations = [render(pipe, p, seeds[i % len(seeds)], out(f\"variation_{i:02d}.png\"), args) for i, p in enumerate(CONFIG[\"variations\"])]",
  "    contact_sheet([variations[i:i + 5] for i in range(0, len(variations), 5)], out(\"sheet_2_variations.png\"))",
  "",
  "    # 3. Novel scenes (look for the subject stuck in its training backgrounds).",
  "    scenes = [[render(pipe, p, s, out(f\"scene_{i:02d}_s{s}.png\"), args) for s in seeds] for i, p in enumerate(CONFIG[\"novel_scenes\"])]",
  "    contact_sheet(scenes, out(\"sheet_3_scenes.png\"))",
  "",
  "    # 4. The stack: this LoRA at self_weight with the others at their weights, and each alone.",
  "    if CONFIG[\"stack\"]:",
  "        adapters = [(\"subject\", CONFIG[\"self_weight\"])] + [(o[\"name\"], o[\"weight\"]) for o in CONFIG[\"stack\"]]",
  "        print(f\"stack: {adapters}, combined weight {sum(w for _, w in adapters):.2f}\")",
  "        rows = []",
  "        for i, pair in enumerate(CONFIG[\"trigger_pairs\"]):",
  "            for seed in seeds:",
  "                use(pipe, adapters)",
  "                row = [render(pipe, pair[\"with\"], seed, out(f\"stack_p{i}_s{seed}.png\"), args)]",
  "                for name, weight in adapters:",
  "                    use(pipe, [(name, weight)])",
  "                    row.append(render(pipe, pair[\"with\"], seed, out(f\"stack_p{i}_s{seed}_{name}_alone.png\"), args))",
  "                rows.append(row)",
  "        contact_sheet(rows, out(\"sheet_4_stack.png\"))",
  "",
  "",
  "if __name__ == \"__main__\":",
  "    main()",
  "",
];
