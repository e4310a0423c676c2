import { useState } from "react";
import type { DatasetResponse, DuplicateCluster } from "@loraspec/engine/server/api-types.js";
import { api, errorText } from "../api.js";

/**
 * The duplicate clusters prep will form, each side by side: the image kept and the ones left out,
 * with why. "Keep this one" and "Keep both" store the choice in the project
 * (.loraspec/dataset-pins.json, POST /api/dataset/pins), which prep, check and this page all read;
 * then the listing is reloaded. Nothing is dropped without the user seeing it here or in `check`.
 */
export function DuplicateClusters({ clusters, pins, pinsFinding, onChanged }: { clusters: DuplicateCluster[]; pins?: DatasetResponse["pins"]; pinsFinding?: DatasetResponse["pinsFinding"]; onChanged?: () => void }) {
  const [status, setStatus] = useState<{ kind: "ok" | "error"; text: string }>();
  const [busy, setBusy] = useState(false);
  const stored = (pins?.keep.length ?? 0) + (pins?.distinct.length ?? 0);
  if (!clusters.length && !stored && !pinsFinding) return status ? <p className={`status status-${status.kind}`}>{status.text}</p> : null;
  const choose = async (body: { keep: string; cluster: string[] } | { distinct: [string, string] } | { reset: true }, done: string) => {
    setBusy(true);
    try {
      await api("/api/dataset/pins", { method: "POST", body });
      setStatus({ kind: "ok", text: `${done} Saved in .loraspec/dataset-pins.json for this dataset; prep and check use it.` });
      onChanged?.();
    } catch (e) {
      setStatus({ kind: "error", text: errorText(e) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="duplicate-clusters" data-testid="duplicate-clusters">
      <h3>Duplicates: prep keeps one image of each group ({clusters.length})</h3>
      {status ? <p className={`status status-${status.kind}`}>{status.text}</p> : null}
      {pinsFinding ? (
        <p className="status status-error" data-testid="pins-finding">
          {pinsFinding.message} {pinsFinding.fix}{" "}
          <button disabled={busy} onClick={() => choose({ reset: true }, "Choices forgotten: prep decides alone again.")}>
            Forget my choices
          </button>
        </p>
      ) : null}
      {stored ? (
        <p className="muted" data-testid="stored-pins">
          Your stored choices: {pins!.keep.length} kept over their duplicates, {pins!.distinct.length} pairs kept both.{" "}
          <button disabled={busy} onClick={() => choose({ reset: true }, "Choices forgotten: prep decides alone again.")}>
            Forget my choices
          </button>
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
                      <button disabled={busy} onClick={() => choose({ keep: file, cluster: [c.keep, ...c.drop] }, `Keeping ${file} over ${c.keep}.`)}>
                        Keep this one
                      </button>{" "}
                      <button disabled={busy} onClick={() => choose({ distinct: [c.keep, file] }, `Keeping both ${c.keep} and ${file}.`)}>
                        Keep both (not a duplicate)
                      </button>
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
