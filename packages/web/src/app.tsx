import { useCallback, useEffect, useState } from "react";
import type { ProjectResponse } from "@loraspec/engine/server/api-types.js";
import { api, ApiError, errorText, onTokenRefused, setFilesBase } from "./api.js";
import { DatasetPage } from "./pages/dataset-page.js";
import { LoraPage } from "./pages/lora-page.js";
import { ProjectPage } from "./pages/project-page.js";
import { RunsPage } from "./pages/runs-page.js";
import { ValidationPage } from "./pages/validation-page.js";

/** The server's answer to /api/project (the type is the server's own). */
export type ProjectInfo = ProjectResponse;

const PAGES = [
  { id: "project", label: "Project" },
  { id: "dataset", label: "Dataset" },
  { id: "runs", label: "Runs" },
  { id: "validation", label: "Validation" },
  { id: "lora", label: "LoRA files" },
] as const;
type PageId = (typeof PAGES)[number]["id"];

function pageFromHash(): { page: PageId; arg?: string } {
  const [page, arg] = location.hash.replace(/^#\/?/, "").split("/");
  return { page: (PAGES.some((p) => p.id === page) ? page : "project") as PageId, arg: arg ? decodeURIComponent(arg) : undefined };
}

export function App() {
  const [route, setRoute] = useState(pageFromHash);
  const [project, setProject] = useState<ProjectInfo>();
  const [error, setError] = useState<unknown>();
  const [refused, setRefused] = useState(false);

  const load = useCallback(() => {
    api<ProjectInfo>("/api/project").then((p) => {
      setFilesBase(p.filesBase);
      setProject(p);
    }, setError);
  }, []);
  useEffect(() => onTokenRefused(() => setRefused(true)), []);
  useEffect(() => {
    load();
    const onHash = () => setRoute(pageFromHash());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, [load]);

  if (error && !(refused && project)) {
    const unauthorized = error instanceof ApiError && error.status === 401;
    return (
      <div className="fatal">
        <h1>loraspec</h1>
        <p>{unauthorized ? "This page needs the access token. Open the URL that `loraspec ui` printed (it ends in ?token=...)." : errorText(error)}</p>
      </div>
    );
  }
  if (!project) return <div className="fatal muted">Loading...</div>;

  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <span className="logo">◆</span> loraspec
        </div>
        <nav>
          {PAGES.map((p) => (
            <a key={p.id} href={`#/${p.id}`} className={route.page === p.id ? "active" : undefined}>
              {p.label}
            </a>
          ))}
        </nav>
        <div className="spacer" />
        <div className="project-name" title="project folder">
          {project.name}
        </div>
      </header>
      {refused ? (
        <div className="banner banner-error token-banner" role="alert" data-testid="token-banner">
          The server no longer accepts this tab's access token: it was restarted with another one, or the token was rotated (
          <code>loraspec ui --rotate-token</code>). Open the URL that <code>loraspec ui</code> printed (it ends in <code>?token=...</code>); unsaved
          edits are kept in this browser and come back there.
        </div>
      ) : null}
      <main>
        {route.page === "project" ? <ProjectPage project={project} onProjectChanged={load} /> : null}
        {route.page === "dataset" ? <DatasetPage project={project} /> : null}
        {route.page === "runs" ? <RunsPage project={project} selected={route.arg} /> : null}
        {route.page === "validation" ? <ValidationPage /> : null}
        {route.page === "lora" ? <LoraPage project={project} /> : null}
      </main>
    </div>
  );
}
