import { useState } from "react";

/** One cluster as the scan reports it (engine dedupe.ts DuplicateCluster). */
export interface Cluster {
  kind: "exact" | "near";
  keep: string;
  drop: string[];
  evidence: Record<string, { phash: number; pixel: number; embedding?: number } | undefined>;
}

/**
 * The duplicate clusters prep will form, each side by side: the image kept and the ones left out,
 * with why. "Keep this one" gives the prep command that pins it (prep's --pin), copied to the
 * clipboard; nothing is dropped without the user seeing it here or in `check`.
 */
export function DuplicateClusters({ clusters }: { clusters: Cluster[] }) {
  const [copied, setCopied] = useState<string>();
  if (!clusters.length) return null;
  const pin = async (file: string) => {
    const command = `loraspec prep --pin ${JSON.stringify(file)}`;
    await navigator.clipboard?.writeText(command).catch(() => undefined);
    setCopied(command);
  };
  return (
    <section className="duplicate-clusters" data-testid="duplicate-clusters">
      <h3>Duplicates: prep keeps one image of each group ({clusters.length})</h3>
      {copied ? (
        <p className="muted">
          Copied: <code>{copied}</code>
        </p>
      ) : null}
      {clusters.map((c) => (
        <div className="cluster" key={c.keep}>
          {[c.keep, ...c.drop].map((file) => {
            const kept = file === c.keep;
            const e = c.evidence[file];
            return (
              <figure key={file} className={kept ? "keep" : "drop"}>
                <img src={`/api/dataset/thumb?path=${encodeURIComponent(file)}`} alt={file} loading="lazy" />
                <figcaption>
                  <strong>{kept ? "keep" : "drop"}</strong> {file}
                  <br />
                  <span className="muted">
                    {kept ? (c.kind === "exact" ? "exact copies" : "near duplicates") : e ? `hash ${e.phash}/64 bits apart, pixel distance ${e.pixel.toFixed(1)}${e.embedding !== undefined ? `, embedding ${e.embedding.toFixed(3)}` : ""}` : "same bytes"}
                  </span>
                  {kept ? null : (
                    <>
                      <br />
                      <button onClick={() => pin(file)}>Keep this one instead</button>
                    </>
                  )}
                </figcaption>
              </figure>
            );
          })}
        </div>
      ))}
    </section>
  );
}
