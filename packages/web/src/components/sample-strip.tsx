import { fileUrl } from "../api.js";

export interface SampleImage {
  /** Project-relative (what /files/ serves): the server's /api/runs/:id/samples, never a raw event path. */
  path: string;
  step?: number;
  prompt?: string;
  seed?: number;
}

export interface SampleGrid {
  /** Sampling steps, oldest first: the strip's columns. */
  steps: number[];
  /** One row per prompt x seed, a cell per step (undefined where that step has no image yet). */
  rows: Array<{ key: string; prompt: string; seed?: number; cells: Array<SampleImage | undefined> }>;
}

/** Samples as a grid: a row per prompt x seed, a column per sampling step, so each row shows the LoRA evolving. */
export function sampleGrid(samples: readonly SampleImage[]): SampleGrid {
  const steps = [...new Set(samples.map((s) => s.step ?? 0))].sort((a, b) => a - b);
  const rows = new Map<string, { prompt: string; seed?: number; byStep: Map<number, SampleImage> }>();
  for (const s of samples) {
    const key = `${s.seed ?? ""}|${s.prompt ?? ""}`;
    const row = rows.get(key) ?? { prompt: s.prompt ?? "", seed: s.seed, byStep: new Map() };
    row.byStep.set(s.step ?? 0, s);
    rows.set(key, row);
  }
  return {
    steps,
    rows: [...rows.entries()].map(([key, r]) => ({ key, prompt: r.prompt, seed: r.seed, cells: steps.map((step) => r.byStep.get(step)) })),
  };
}

/** The run's samples step by step (newest on the right), each image a link to the full file. */
export function SampleStrip({ samples }: { samples: readonly SampleImage[] }) {
  if (samples.length === 0) return <div className="empty muted">No samples yet.</div>;
  const grid = sampleGrid(samples);
  return (
    <div className="sample-strip" data-testid="sample-strip">
      <table>
        <thead>
          <tr>
            <th />
            {grid.steps.map((step) => (
              <th key={step} className="small muted num">
                step {step}
                {step === 0 && samples.some((s) => s.step === 0) ? " · base" : null}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {grid.rows.map((row) => (
            <tr key={row.key}>
              <th className="small sample-prompt" title={row.prompt}>
                {row.prompt}
                {row.seed !== undefined ? <div className="muted">seed {row.seed}</div> : null}
              </th>
              {row.cells.map((s, i) => (
                <td key={grid.steps[i]}>
                  {s ? (
                    <a href={fileUrl(s.path)} target="_blank" rel="noreferrer" title={`step ${s.step ?? "?"}: ${s.prompt ?? ""} (seed ${s.seed ?? "?"})`}>
                      <img src={fileUrl(s.path)} alt={`step ${s.step ?? "?"}: ${s.prompt ?? ""}`} loading="lazy" />
                    </a>
                  ) : null}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
