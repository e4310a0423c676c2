import type { Command } from "commander";
import pc from "picocolors";
import { TRIGGER_TAG_SHARE } from "@loraspec/core/lora/caption-tags.js";
import { printJson, table } from "../output.js";

/** `loraspec inspect FILE [--json]`: format, base model, modules, ranks, metadata; unknown keys listed. */
export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description("Explain a LoRA file: key format, base model, modules and coverage, rank/alpha, metadata, NaN/Inf, unknown keys")
    .argument("<file>", "a .safetensors LoRA")
    .option("--json", "print the full report as JSON")
    .option("--modules", "list every module with its rank, alpha and scale")
    .action(async (file: string, opts: { json?: boolean; modules?: boolean }) => {
      const { inspectLora } = await import("@loraspec/engine/lora/inspect-lora.js");
      const r = await inspectLora({ path: file });
      if (opts.json) {
        printJson(r);
        return;
      }
      const out: string[] = [];
      const mb = (r.bytes / 1e6).toFixed(1);
      out.push(`${pc.bold(r.file)}  ${mb} MB, ${r.tensors} tensors (${Object.entries(r.dtypes).map(([d, n]) => `${n} ${d}`).join(", ")})`);
      out.push(`format        ${r.format}${r.traits.length ? ` (${r.traits.join(", ")})` : ""}`);
      out.push(`network       ${networkLine(r.network)}`);
      out.push(`base model    ${r.architecture ? r.architecture.title : pc.yellow("unknown")}`);
      if (r.modules.length) {
        out.push(`modules       ${r.modules.length}  ranks ${Object.entries(r.ranks).map(([k, n]) => `${k}x${n}`).join(" ")}  scales ${Object.entries(r.scales).map(([k, n]) => `${Number(k).toPrecision(4)}x${n}`).join(" ")}`);
      } else {
        out.push(`modules       ${r.architecture ? "no plain LoRA module (the adapter's modules are counted under network)" : "none: no key matched a module of a known base model"}`);
      }
      for (const c of r.coverage ?? []) {
        out.push(`  ${c.component.padEnd(12)}${c.touched}/${c.total} native modules (${r.architecture?.title}'s own names), ${c.defaultTouched}/${c.defaultTargets} of the default attention/MLP targets`);
      }
      if (r.targets) {
        const t = r.targets;
        out.push(`targets       ${t.preset}: ${t.covered}/${t.blockModules} diffusers modules of the transformer blocks${t.outside ? ` + ${t.outside} outside them` : ""} (attention ${t.presets.attention}, attention-mlp ${t.presets["attention-mlp"]}, all-linear ${t.presets["all-linear"]})`);
      }
      out.push(...tagLines(r));
      const meta = { ...r.metadata.ss, ...r.metadata.modelspec, ...r.metadata.other };
      const shown = Object.entries(meta).filter(([k]) => !/tag_frequency|dataset_dirs|datasets|bucket_info/.test(k));
      if (shown.length) {
        out.push("metadata");
        for (const [k, v] of shown) out.push(`  ${k} = ${v.length > 100 ? `${v.slice(0, 97)}...` : v}`);
      }
      if (r.nonFinite.length) out.push(pc.red(`NaN/Inf in ${r.nonFinite.length} tensor(s): ${r.nonFinite.map((t) => `${t.tensor} (${t.nan} NaN, ${t.inf} Inf)`).join(", ")}`));
      if (r.nonLora.length) out.push(pc.yellow(`not plain LoRA (${r.nonLora.length} module(s)): ${r.nonLora.slice(0, 10).join(", ")}${r.nonLora.length > 10 ? ", ..." : ""}`));
      if (r.misfits.length) {
        out.push(pc.yellow(`shapes that do not fit (${r.misfits.length} module(s)): named like a base model's modules, their factors do not fit them`));
        for (const m of r.misfits) out.push(`  ${m}`);
      }
      if (r.unplaced.length) {
        const what = r.misfits.length ? "not placed" : `not a module of ${r.architecture?.title ?? "any known base model"}`;
        out.push(pc.yellow(`unplaced keys (${r.unplaced.length}): ${what}`));
        for (const k of r.unplaced) out.push(`  ${k}`);
      }
      if (opts.modules) {
        out.push("");
        out.push(table(r.modules.map((m) => [m.key, m.native + (m.diffusers ? ` [${m.diffusers}]` : ""), String(m.rank), m.alpha === undefined ? "-" : String(m.alpha), m.scale.toPrecision(4)]), ["key", "module", "rank", "alpha", "scale"]));
      }
      process.stdout.write(`${out.join("\n")}\n`);
    });
}

type Report = Awaited<ReturnType<typeof import("@loraspec/engine/lora/inspect-lora.js").inspectLora>>;

/** A tag as shown: one line, at most 40 characters (ss_tag_frequency is whatever the captions held). */
const shownTag = (tag: string) => {
  const flat = tag.replace(/\s+/g, " ");
  return flat.length > 40 ? `${flat.slice(0, 37)}...` : flat;
};

/**
 * "trigger words" (tags in nearly every caption of a folder, or modelspec.trigger_phrase) and,
 * apart, the caption-tag histogram's most frequent tags with their counts, so nothing is hidden.
 */
function tagLines(r: Report): string[] {
  const t = r.captionTags;
  const lines: string[] = [];
  const share = `${Math.round(TRIGGER_TAG_SHARE.value * 100)}%`;
  if (r.triggerWords.length) lines.push(`trigger words ${r.triggerWords.map(shownTag).join(", ")}`);
  else if (t.tags || t.note) lines.push(`trigger words none: ${t.note ?? `no caption tag is in ${share} or more of its folder's captions (natural-language captions have none)`}`);
  if (r.triggerWords.length && t.note) lines.push(`              (${t.note})`);
  if (t.top.length) {
    const of = `${t.top.length} most frequent of ${t.tags} tag(s)${t.captions ? ` in ${t.captions} caption(s)` : ""}`;
    lines.push(`frequent tags ${t.top.map((x) => `${shownTag(x.tag)} x${x.count}`).join(", ")} (${of})`);
  }
  return lines;
}

type Network = Awaited<ReturnType<typeof import("@loraspec/engine/lora/inspect-lora.js").inspectLora>>["network"];

/** "lokr, 32 modules, rank 4x32, factor -1 (w1 8x8 x32)". */
function networkLine(n: Network): string {
  const kinds = Object.entries(n.kinds).map(([k, c]) => `${c} ${k}`).join(", ");
  const parts = [n.type === "mixed" ? `mixed (${kinds})` : `${n.type}, ${Object.values(n.kinds)[0] ?? 0} modules`];
  const ranks = Object.entries(n.ranks).map(([r, c]) => `${r} x${c}`).join(", ");
  if (ranks) parts.push(`rank ${ranks}`);
  if (n.factor !== undefined || n.w1Shapes) {
    const w1 = n.w1Shapes ? ` (w1 ${Object.entries(n.w1Shapes).map(([s, c]) => `${s} x${c}`).join(", ")})` : "";
    parts.push(`factor ${n.factor ?? "?"}${w1}`);
  }
  return parts.join(", ");
}
