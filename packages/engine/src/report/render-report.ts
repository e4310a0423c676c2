import type { CheckVerdict, Measure, VerdictStatus, WeightVerdict } from "@loraspec/core/validate/judge-validation.js";
import type { SampleJob, WeightChecks } from "@loraspec/core/validate/plan-validation.js";
import type { ValidationResult } from "../validate/validate-lora.js";
import type { TrainingSample } from "../run/training-samples.js";
import { trainingSamplesHtml } from "./training-samples-html.js";

export interface RenderReportParams {
  result: ValidationResult;
  /** The run's loss curve (empty when validating a file). */
  loss: { step: number; loss: number }[];
  contractText?: string;
  /** A job's image source: a relative path inside the validation folder, or a data URI. */
  imageSrc: (jobId: string) => string;
  /** The run's samples during training, with their image sources (absent when validating a file). */
  trainingSamples?: { samples: TrainingSample[]; src: (s: TrainingSample) => string };
}

const esc = (s: unknown): string =>
  String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);

const fmt = (v: number | null | undefined, digits = 3): string => (v === null || v === undefined || !Number.isFinite(v) ? "-" : Number(v.toFixed(digits)).toString());

const badge = (s: VerdictStatus): string => `<span class="badge ${s}">${s}</span>`;

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f24;background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px} h3{font-size:15px;margin:16px 0 6px}
.muted{color:#667} .badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;text-transform:uppercase}
.pass{background:#d7f5dd;color:#11632a} .warn{background:#fff1c2;color:#7a5200} .fail{background:#ffd9d6;color:#9b1c12} .skip{background:#e8e8ec;color:#556}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff} td,th{border:1px solid #e1e1e6;padding:4px 8px;text-align:left;vertical-align:top} th{background:#f1f1f4;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:8px} figure{margin:0;background:#fff;border:1px solid #e1e1e6;padding:4px;width:164px}
figure img{width:160px;height:160px;object-fit:contain;image-rendering:auto;display:block;background:#eee} figcaption{font-size:11px;color:#556;word-break:break-word}
.pair{display:flex;gap:4px;margin:0 8px 8px 0;padding:4px;border:1px dashed #ccd;background:#fff}
pre{background:#fff;border:1px solid #e1e1e6;padding:8px;overflow:auto;font-size:12px}
.src{font-size:11px;color:#778} svg{background:#fff;border:1px solid #e1e1e6}
ul.warnings li{color:#7a5200}
`;

function fig(p: RenderReportParams, job: SampleJob | undefined, caption: string): string {
  if (!job) return "";
  return `<figure><img src="${esc(p.imageSrc(job.id))}" alt="${esc(job.prompt)}" loading="lazy"><figcaption>${esc(caption)}<br>${esc(job.prompt)} · seed ${job.seed}</figcaption></figure>`;
}

function measuresTable(measures: Measure[]): string {
  const rows = measures.map((m) => {
    const rule = m.better === "higher" ? `pass ≥ ${m.pass}, warn ≥ ${m.warn}` : `pass ≤ ${m.pass}, warn ≤ ${m.warn}`;
    const detail = m.detail ? Object.entries(m.detail).map(([k, v]) => `${esc(k)} ${typeof v === "number" ? fmt(v) : esc(v ?? "-")}`).join("; ") : "";
    const row = `<tr><td>${badge(m.status)}</td><td>${esc(m.label)}</td><td><b>${fmt(m.value)}</b></td><td>${esc(rule)}</td><td class="muted">${detail}</td><td class="src">${esc(m.source)}</td></tr>`;
    const advice = m.advice ? `<tr class="advice"><td></td><td colspan="4"><b>What to try:</b> ${esc(m.advice.text)}</td><td class="src">${esc(m.advice.source)}</td></tr>` : "";
    return row + advice;
  });
  return `<table><tr><th>verdict</th><th>measure</th><th>value</th><th>threshold</th><th>numbers</th><th>source</th></tr>${rows.join("")}</table>`;
}

function checkOf(v: WeightVerdict | undefined, id: CheckVerdict["check"]): CheckVerdict | undefined {
  return v?.checks.find((c) => c.check === id);
}

function lossSvg(loss: { step: number; loss: number }[]): string {
  if (loss.length < 2) return `<p class="muted">No loss curve: validate a run (<code>--run &lt;id&gt;</code>) to see its loss.</p>`;
  const every = Math.ceil(loss.length / 1500);
  const pts = loss.filter((_, i) => i % every === 0);
  const W = 720, H = 220, L = 50, B = 24;
  const xs = pts.map((p) => p.step), ys = pts.map((p) => p.loss);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x: number) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - 10);
  const sy = (y: number) => H - B - ((y - y0) / (y1 - y0 || 1)) * (H - B - 10);
  const line = pts.map((p) => `${sx(p.step).toFixed(1)},${sy(p.loss).toFixed(1)}`).join(" ");
  return `<svg id="loss-curve" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="training loss">
<line x1="${L}" y1="${H - B}" x2="${W - 10}" y2="${H - B}" stroke="#999"/><line x1="${L}" y1="10" x2="${L}" y2="${H - B}" stroke="#999"/>
<text x="${L - 4}" y="14" font-size="10" text-anchor="end">${fmt(y1, 4)}</text><text x="${L - 4}" y="${H - B}" font-size="10" text-anchor="end">${fmt(y0, 4)}</text>
<text x="${L}" y="${H - 8}" font-size="10">step ${x0}</text><text x="${W - 10}" y="${H - 8}" font-size="10" text-anchor="end">step ${x1}</text>
<polyline fill="none" stroke="#3b6fd8" stroke-width="1.5" points="${line}"/></svg>`;
}

/** The validation report: one HTML page with no scripts and no network, images from the validation folder. */
export function renderReport(p: RenderReportParams): string {
  const { result } = p;
  const { plan, verdicts } = result;
  const jobs = new Map(plan.jobs.map((j) => [j.id, j]));
  const J = (id: string | undefined) => (id ? jobs.get(id) : undefined);
  const best = verdicts.best;
  const bestChecks: WeightChecks | undefined = plan.weights.find((w) => w.key === best?.key) ?? plan.weights[0];
  const bestVerdict = verdicts.weights.find((w) => w.key === bestChecks?.key);
  const out: string[] = [];
  out.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">`);
  out.push(`<title>loraspec validation: ${esc(result.name)}</title><style>${STYLE}</style></head><body><main>`);
  out.push(`<h1>Validation: ${esc(result.name)} ${badge(verdicts.status)}</h1>`);
  out.push(
    `<p class="muted">${esc(result.createdAt)} · sampler ${esc(result.sampler)} · ${result.settings.width}x${result.settings.height}, ${result.settings.steps} steps · embedder ${esc(result.scores.embedder.clip)}${result.scores.embedder.dino ? ` + ${esc(result.scores.embedder.dino)}` : ""} · ${result.reference.length} training images · ${plan.jobs.length} images</p>`,
  );
  if (best) out.push(`<p id="best">Best ${best.step === undefined ? "weight" : "checkpoint and weight"}: <b>${best.step === undefined ? "" : `step ${best.step} at `}${best.weight}</b> (checks 1-3).</p>`);
  if (verdicts.warnings.length > 0) out.push(`<ul class="warnings">${verdicts.warnings.map((w) => `<li>${esc(w.message)}</li>`).join("")}</ul>`);

  // Summary per LoRA x weight.
  out.push(`<h2>Summary</h2><table id="summary"><tr><th>LoRA</th><th>weight</th><th>1. trigger</th><th>2. consistency</th><th>3. composition</th><th>overall</th></tr>`);
  for (const w of verdicts.weights) {
    const cell = (id: CheckVerdict["check"]) => `<td>${badge(checkOf(w, id)?.status ?? "skip")}</td>`;
    out.push(`<tr${w.key === best?.key ? ' style="outline:2px solid #3b6fd8"' : ""}><td>${esc(w.candidate)}</td><td>${w.weight}</td>${cell("trigger")}${cell("consistency")}${cell("composition")}<td>${badge(w.status)}</td></tr>`);
  }
  out.push(`</table>`);
  if (verdicts.stack) out.push(`<p>4. Stacking: ${badge(verdicts.stack.status)}</p>`);

  if (bestChecks) {
    const label = `${bestChecks.candidate} at ${bestChecks.weight}`;
    // 1. Trigger.
    out.push(`<h2 id="check-trigger">1. Trigger fires ${badge(checkOf(bestVerdict, "trigger")?.status ?? "skip")}</h2>`);
    out.push(`<p class="muted">Same prompts and seeds with and without the trigger (${esc(label)}); the base model's pair shows what the token alone does.</p><div class="grid">`);
    for (const t of bestChecks.trigger) {
      out.push(`<div class="pair">${fig(p, J(t.with), "with trigger")}${fig(p, J(t.without), "without")}${fig(p, J(t.baseWith), "base, with")}${fig(p, J(t.baseWithout), "base, without")}</div>`);
    }
    out.push(`</div>${measuresTable(checkOf(bestVerdict, "trigger")?.measures ?? [])}`);
    // 2. Variations.
    out.push(`<h2 id="check-consistency">2. Subject consistency across poses ${badge(checkOf(bestVerdict, "consistency")?.status ?? "skip")}</h2><div class="grid">`);
    for (const id of bestChecks.variations) out.push(fig(p, J(id), label));
    out.push(`</div><h3>Base model, same prompts</h3><div class="grid">`);
    for (const id of plan.baseVariations) out.push(fig(p, J(id), "base"));
    out.push(`</div>${measuresTable(checkOf(bestVerdict, "consistency")?.measures ?? [])}`);
    // 3. Scenes.
    out.push(`<h2 id="check-composition">3. Composition with the base ${badge(checkOf(bestVerdict, "composition")?.status ?? "skip")}</h2>`);
    if (bestChecks.scenes.length === 0) out.push(`<p class="muted">The contract lists no novel_scenes.</p>`);
    out.push(`<div class="grid">`);
    for (const s of bestChecks.scenes) out.push(`<div class="pair">${fig(p, J(s.job), label)}${fig(p, J(s.base), "base")}</div>`);
    out.push(`</div>${measuresTable(checkOf(bestVerdict, "composition")?.measures ?? [])}`);
  }

  // 4. Stack.
  out.push(`<h2 id="check-stack">4. Stacking ${badge(verdicts.stack?.status ?? "skip")}</h2>`);
  if (!plan.stack) out.push(`<p class="muted">The contract's validation.stack is empty.</p>`);
  else {
    out.push(`<p class="muted">${plan.stack.adapters.map((a) => `${esc(a.name)} ${a.weight}`).join(" + ")} = ${plan.stack.combinedWeight}</p><div class="grid">`);
    for (const it of plan.stack.items) {
      out.push(`<div class="pair">${fig(p, J(it.stack), "stack")}${Object.entries(it.alone).map(([n, id]) => fig(p, J(id), `${n} alone`)).join("")}${fig(p, J(it.base), "base")}</div>`);
    }
    out.push(`</div>${measuresTable(verdicts.stack?.measures ?? [])}`);
  }

  // 5. Sweep (and 6. checkpoints): the first trigger pair's "with" image per LoRA x weight.
  out.push(`<h2 id="check-sweep">5. Weight sweep${new Set(plan.weights.map((w) => w.candidate)).size > 1 ? " and 6. checkpoints" : ""}</h2><table id="sweep"><tr><th>LoRA</th><th>weight</th>`);
  const seeds = plan.weights[0]?.trigger.map((t) => `${t.prompt} · ${t.seed}`) ?? [];
  for (const s of seeds) out.push(`<th>${esc(s)}</th>`);
  out.push(`<th>trigger effect</th><th>verdict</th></tr>`);
  for (const w of plan.weights) {
    const v = verdicts.weights.find((x) => x.key === w.key);
    const effect = checkOf(v, "trigger")?.measures[0]?.value;
    out.push(`<tr><td>${esc(w.candidate)}</td><td>${w.weight}</td>${w.trigger.map((t) => `<td>${fig(p, J(t.with), "")}</td>`).join("")}<td>${fmt(effect)}</td><td>${badge(v?.status ?? "skip")}</td></tr>`);
  }
  out.push(`</table>`);

  out.push(`<h2 id="loss">Loss curve</h2>${lossSvg(p.loss)}`);
  if (p.trainingSamples) out.push(trainingSamplesHtml(p.trainingSamples.samples, p.trainingSamples.src));
  out.push(`<h2 id="contract">Contract</h2>${p.contractText ? `<pre>${esc(p.contractText)}</pre>` : `<p class="muted">Validated a file without a contract.</p>`}`);
  out.push(`<p class="src">Thresholds are knowledge records (packages/core/src/knowledge/validation-thresholds.ts); values marked "ours, to calibrate" are not published gates.</p>`);
  out.push(`</main></body></html>\n`);
  return out.join("\n");
}
