import type { TrainingSample } from "../run/training-samples.js";

const esc = (s: unknown): string =>
  String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);

/**
 * The report's strip of the images the run rendered while training: a row per prompt x seed, a
 * column per sampling step (step 0, with samples.first, is the base before training), so each row
 * shows the LoRA taking hold. `src` gives an image's link
 * (relative to the report, or a data URI). No scripts, text escaped.
 */
export function trainingSamplesHtml(samples: readonly TrainingSample[], src: (s: TrainingSample) => string): string {
  const head = `<h2 id="training-samples">Samples during training</h2>`;
  if (samples.length === 0) return `${head}<p class="muted">The run rendered no samples (set <code>samples.every</code> in the contract to watch the LoRA evolve).</p>`;
  const steps = [...new Set(samples.map((s) => s.step ?? 0))].sort((a, b) => a - b);
  const rows = new Map<string, Map<number, TrainingSample>>();
  for (const s of samples) {
    const key = JSON.stringify([s.prompt ?? "", s.seed ?? null]);
    rows.set(key, (rows.get(key) ?? new Map()).set(s.step ?? 0, s));
  }
  // A step-0 column (samples.first) is the base before training: said in its header.
  const label = (st: number) => (st === 0 && samples.some((s) => s.step === 0) ? "step 0 · base" : `step ${st}`);
  const out = [`${head}<table id="training-samples-strip"><tr><th>prompt · seed</th>${steps.map((st) => `<th>${label(st)}</th>`).join("")}</tr>`];
  for (const [key, byStep] of rows) {
    const [prompt, seed] = JSON.parse(key) as [string, number | null];
    const cells = steps.map((st) => {
      const s = byStep.get(st);
      return `<td>${s ? `<figure><img src="${esc(src(s))}" alt="${esc(`step ${st}: ${prompt}`)}" loading="lazy"></figure>` : ""}</td>`;
    });
    out.push(`<tr><th>${esc(prompt)}${seed === null ? "" : ` · ${seed}`}</th>${cells.join("")}</tr>`);
  }
  out.push(`</table>`);
  return out.join("");
}
