import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { fixCaption, startsWithTrigger } from "@loraspec/core/captions/caption-rules.js";
import { api, errorText } from "../api.js";
import type { DatasetResponse, ImageRow } from "@loraspec/engine/server/api-types.js";
import type { ProjectInfo } from "../app.js";
import { draftKey, setUnsaved } from "../unsaved.js";
import { DuplicateClusters } from "./duplicate-clusters.js";
import { HiddenFiles } from "./hidden-files.js";

/** Drafts are kept per project (its real path, hashed), so two projects never mix their edits. */
const draftsKey = (projectId: string) => draftKey("captions", projectId);

/**
 * Dataset: thumbnails with problems marked, the crop each image gets, and a caption editor.
 * Unsaved edits are drafts keyed by image path (kept in localStorage), so adding or removing
 * images, or reloading the page, never loses one.
 */
export function DatasetPage({ project }: { project: ProjectInfo }) {
  const [data, setData] = useState<DatasetResponse>();
  const [error, setError] = useState<string>();
  const [selected, setSelected] = useState<string[]>([]);
  const [drafts, setDrafts] = useState<Record<string, string>>(() => {
    try {
      return JSON.parse(localStorage.getItem(draftsKey(project.id)) ?? "{}") as Record<string, string>;
    } catch {
      return {};
    }
  });
  const [status, setStatus] = useState<{ kind: "ok" | "error" | "info"; text: string }>();
  const [filter, setFilter] = useState<"all" | "problems" | "uncaptioned" | "edited">("all");
  const lastClicked = useRef<string | undefined>(undefined);

  const load = useCallback(() => {
    api<DatasetResponse>("/api/dataset").then(
      (d) => {
        setData(d);
        setError(undefined);
        setSelected((s) => s.filter((p) => d.images.some((i) => i.path === p)));
      },
      (e) => setError(errorText(e)),
    );
  }, []);
  useEffect(load, [load]);
  useEffect(() => {
    localStorage.setItem(draftsKey(project.id), JSON.stringify(drafts));
    setUnsaved("captions", Object.keys(drafts).length > 0);
  }, [drafts, project.id]);

  const images = data?.images ?? [];
  const captionOf = (img: ImageRow) => drafts[img.path] ?? (img.caption ?? "").replace(/\n$/, "");
  const visible = useMemo(
    () =>
      images.filter((i) =>
        filter === "problems" ? i.problems.length > 0 : filter === "uncaptioned" ? i.caption === null : filter === "edited" ? i.path in drafts : true,
      ),
    [images, filter, drafts],
  );
  const dirtyPaths = Object.keys(drafts).filter((p) => images.some((i) => i.path === p));

  const click = (path: string, e: React.MouseEvent) => {
    if (e.shiftKey && lastClicked.current) {
      const a = visible.findIndex((i) => i.path === lastClicked.current);
      const b = visible.findIndex((i) => i.path === path);
      const range = visible.slice(Math.min(a, b), Math.max(a, b) + 1).map((i) => i.path);
      setSelected((s) => [...new Set([...s, ...range])]);
    } else if (e.metaKey || e.ctrlKey) {
      setSelected((s) => (s.includes(path) ? s.filter((p) => p !== path) : [...s, path]));
    } else setSelected([path]);
    lastClicked.current = path;
  };

  const setDraft = (path: string, text: string) => {
    const img = images.find((i) => i.path === path);
    const original = (img?.caption ?? "").replace(/\n$/, "");
    setDrafts((d) => {
      const next = { ...d };
      if (text === original) delete next[path];
      else next[path] = text;
      return next;
    });
  };

  const save = async (paths: string[]) => {
    if (!data) return;
    const items = paths.map((p) => {
      const img = images.find((i) => i.path === p)!;
      // The trigger is enforced at the start, the way training will read it.
      const text = data.trigger ? fixCaption(captionOf(img), data.trigger, data.captionStyle) : captionOf(img);
      // `base`: the caption as listed; one changed on disk since is refused (E_FILE_CHANGED), not overwritten.
      return { image: p, text, base: img.caption };
    });
    try {
      await api("/api/captions", { method: "PUT", body: { items } });
      setDrafts((d) => {
        const next = { ...d };
        for (const p of paths) delete next[p];
        return next;
      });
      setStatus({ kind: "ok", text: `Saved ${items.length} caption${items.length > 1 ? "s" : ""}` });
      load();
    } catch (e) {
      setStatus({ kind: "error", text: errorText(e) });
    }
  };

  const autoCaption = async () => {
    setStatus({ kind: "info", text: `Captioning ${selected.length} image(s)...` });
    try {
      const r = await api<{ captions: Record<string, string>; failed: Array<{ image: string; message: string }> }>("/api/captions/auto", {
        body: { images: selected },
      });
      // Suggestions land as unsaved edits: review, then Save. Nothing on disk changes yet.
      for (const [path, text] of Object.entries(r.captions)) setDraft(path, text);
      const n = Object.keys(r.captions).length;
      setStatus(
        r.failed.length
          ? { kind: "error", text: `${n} suggested, ${r.failed.length} failed: ${r.failed[0]!.message}` }
          : { kind: "ok", text: `${n} caption(s) suggested; review and save` },
      );
    } catch (e) {
      setStatus({ kind: "error", text: errorText(e) });
    }
  };

  const upload = async (files: FileList | null) => {
    if (!files?.length) return;
    const form = new FormData();
    for (const f of Array.from(files)) form.append("file", f);
    try {
      const r = await api<{ added: string[] }>("/api/dataset/upload", { form });
      setStatus({ kind: "ok", text: `Added ${r.added.length} image(s)` });
      load();
    } catch (e) {
      setStatus({ kind: "error", text: errorText(e) });
    }
  };

  if (error) return <div className="page"><div className="banner banner-error">{error}</div></div>;
  if (!data) return <div className="page muted">Loading dataset...</div>;
  const problemCount = images.filter((i) => i.problems.length).length;

  return (
    <div className="page dataset-page">
      <div className="toolbar">
        <h2>{data.dir}/</h2>
        <span className="muted">
          {images.length} images · {images.filter((i) => i.caption !== null).length} captioned · trigger <code className="trigger">{data.trigger || "—"}</code> ·{" "}
          {data.captionStyle} captions · crop {data.crop}
          {data.resolution ? ` · ${data.resolution}px` : ""}
        </span>
        <div className="spacer" />
        {status ? <span className={`status status-${status.kind}`}>{status.text}</span> : null}
        <select value={filter} onChange={(e) => setFilter(e.target.value as typeof filter)} aria-label="filter">
          <option value="all">All ({images.length})</option>
          <option value="problems">With problems ({problemCount})</option>
          <option value="uncaptioned">Uncaptioned</option>
          <option value="edited">Unsaved edits ({dirtyPaths.length})</option>
        </select>
        <label className="button">
          Add images
          <input type="file" accept="image/png,image/jpeg,image/webp" multiple hidden onChange={(e) => upload(e.target.files)} />
        </label>
        <button onClick={() => setSelected(visible.map((i) => i.path))}>Select all</button>
        <button className="primary" disabled={dirtyPaths.length === 0} onClick={() => save(dirtyPaths)}>
          Save all ({dirtyPaths.length})
        </button>
      </div>
      <DuplicateClusters clusters={data.summary?.duplicates ?? []} pins={data.pins} pinsFinding={data.pinsFinding} onChanged={load} />
      <HiddenFiles finding={data.hiddenFinding} />
      <div className="dataset-grid-layout">
        <div className="thumb-grid" data-testid="thumb-grid">
          {visible.map((img) => (
            <button
              key={img.path}
              className={`thumb${selected.includes(img.path) ? " selected" : ""}${img.problems.length ? " problem" : ""}`}
              onClick={(e) => click(img.path, e)}
              title={img.problems.map((p) => p.message).join("\n") || img.path}
              data-path={img.path}
            >
              <div className="thumb-img">
                {img.problems.some((p) => p.code === "unreadable") ? (
                  <div className="unreadable">unreadable</div>
                ) : (
                  <img src={`/api/dataset/thumb?path=${encodeURIComponent(img.path)}`} alt={img.path} loading="lazy" />
                )}
                {img.path in drafts ? <span className="badge badge-edit">edited</span> : null}
              </div>
              <div className="thumb-name">{img.path}</div>
              <div className="thumb-meta">
                {img.width ? `${img.width}x${img.height}` : ""}
                {img.problems.map((p) => (
                  <span key={p.code} className={`tag tag-${p.code === "unreadable" ? "error" : "warn"}`}>
                    {p.code.replace(/_/g, " ")}
                  </span>
                ))}
              </div>
            </button>
          ))}
          {visible.length === 0 ? <div className="empty muted">No images match.</div> : null}
        </div>
        <CaptionPanel
          data={data}
          selected={images.filter((i) => selected.includes(i.path))}
          captionOf={captionOf}
          setDraft={setDraft}
          drafts={drafts}
          onSave={save}
          onAutoCaption={project.capabilities.autoCaption ? autoCaption : undefined}
        />
      </div>
    </div>
  );
}

function CaptionPanel(props: {
  data: DatasetResponse;
  selected: ImageRow[];
  captionOf: (i: ImageRow) => string;
  setDraft: (path: string, text: string) => void;
  drafts: Record<string, string>;
  onSave: (paths: string[]) => void;
  onAutoCaption?: () => void;
}) {
  const { data, selected, captionOf, setDraft, drafts, onSave, onAutoCaption } = props;
  const [append, setAppend] = useState("");
  const [find, setFind] = useState("");
  const [replace, setReplace] = useState("");
  if (selected.length === 0) {
    return (
      <aside className="panel caption-panel">
        <div className="panel-title">Caption</div>
        <div className="empty muted">Select an image (Ctrl/Shift-click for several).</div>
      </aside>
    );
  }
  const one = selected.length === 1 ? selected[0]! : undefined;
  const paths = selected.map((i) => i.path);
  return (
    <aside className="panel caption-panel">
      <div className="panel-title">
        {one ? one.path : `${selected.length} images selected`}
        {one ? <span className="muted small"> {one.width ? `${one.width}x${one.height}` : ""}</span> : null}
      </div>
      {one ? (
        <>
          <div className="crop-preview">
            <figure>
              <img src={`/api/dataset/thumb?path=${encodeURIComponent(one.path)}`} alt="original" />
              <figcaption>original</figcaption>
            </figure>
            <figure>
              <img src={`/api/dataset/crop?path=${encodeURIComponent(one.path)}`} alt="training crop" />
              <figcaption>training crop ({data.crop})</figcaption>
            </figure>
          </div>
          {one.problems.length ? (
            <ul className="problems">
              {one.problems.map((p) => (
                <li key={p.code}>
                  <span className="tag tag-warn">{p.code.replace(/_/g, " ")}</span> {p.message}
                </li>
              ))}
            </ul>
          ) : null}
          <label className="small muted" htmlFor="caption-text">
            {one.captionFile}
          </label>
          <textarea id="caption-text" className="caption-text" rows={5} value={captionOf(one)} onChange={(e) => setDraft(one.path, e.target.value)} />
          <TriggerPreview text={captionOf(one)} trigger={data.trigger} />
        </>
      ) : (
        <div className="multi-edit">
          <div className="multi-list">
            {selected.map((i) => (
              <div key={i.path} className="multi-row">
                <span className="multi-name">{i.path}</span>
                <TriggerPreview text={captionOf(i)} trigger={data.trigger} compact />
              </div>
            ))}
          </div>
          <div className="multi-op">
            <input placeholder="phrase to append to all" value={append} onChange={(e) => setAppend(e.target.value)} />
            <button
              disabled={!append.trim()}
              onClick={() => {
                for (const i of selected) {
                  const c = captionOf(i).trim();
                  setDraft(i.path, c ? `${c}${data.captionStyle === "tags" ? ", " : ", "}${append.trim()}` : append.trim());
                }
                setAppend("");
              }}
            >
              Append
            </button>
          </div>
          <div className="multi-op">
            <input placeholder="find" value={find} onChange={(e) => setFind(e.target.value)} />
            <input placeholder="replace with" value={replace} onChange={(e) => setReplace(e.target.value)} />
            <button disabled={!find} onClick={() => selected.forEach((i) => setDraft(i.path, captionOf(i).split(find).join(replace)))}>
              Replace
            </button>
          </div>
        </div>
      )}
      <div className="caption-actions">
        {onAutoCaption ? (
          <button onClick={onAutoCaption}>Auto-caption {selected.length > 1 ? `${selected.length} images` : ""}</button>
        ) : (
          <button disabled title="No captioner is configured for this server">
            Auto-caption
          </button>
        )}
        <div className="spacer" />
        <button disabled={!paths.some((p) => p in drafts)} onClick={() => paths.forEach((p) => setDraft(p, (selected.find((i) => i.path === p)!.caption ?? "").replace(/\n$/, "")))}>
          Discard
        </button>
        <button className="primary" disabled={!paths.some((p) => p in drafts)} onClick={() => onSave(paths.filter((p) => p in drafts))}>
          Save caption{selected.length > 1 ? "s" : ""}
        </button>
      </div>
    </aside>
  );
}

/** The caption with the trigger highlighted, and a note when it is not at the start. */
function TriggerPreview({ text, trigger, compact }: { text: string; trigger: string; compact?: boolean }) {
  if (!trigger) return compact ? <span className="caption-preview">{text}</span> : null;
  const ok = startsWithTrigger(text, trigger);
  const parts = text.split(new RegExp(`(${trigger.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")})`, "i"));
  return (
    <div className={`caption-preview${compact ? " compact" : ""}`} data-testid="trigger-preview">
      {parts.map((p, i) => (p.toLowerCase() === trigger.toLowerCase() ? <mark key={i}>{p}</mark> : <span key={i}>{p}</span>))}
      {!ok ? <div className="trigger-warn">The trigger “{trigger}” is not at the start; saving puts it there.</div> : null}
    </div>
  );
}
