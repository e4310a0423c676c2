/**
 * Unsaved edits anywhere on the page (the contract, caption drafts), by who holds them: closing
 * or reloading the tab while any is held asks first. Drafts themselves live in localStorage,
 * keyed by the project's id (its real path, hashed, from the server), so a tab switch, a reload
 * or another project with the same folder name never loses or mixes them.
 */
const holders = new Set<string>();
let installed = false;

export function setUnsaved(holder: string, unsaved: boolean): void {
  if (unsaved) holders.add(holder);
  else holders.delete(holder);
  if (!installed && typeof window !== "undefined") {
    installed = true;
    window.addEventListener("beforeunload", (e) => {
      if (holders.size === 0) return;
      e.preventDefault();
      e.returnValue = ""; // older browsers need it set to show the prompt
    });
  }
}

/** localStorage key of one kind of draft for one project. */
export function draftKey(kind: "contract" | "captions", projectId: string): string {
  return `loraspec.${kind}Draft.${projectId}`;
}

export function readDraft<T>(key: string): T | undefined {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? undefined : (JSON.parse(raw) as T);
  } catch {
    return undefined;
  }
}

export function writeDraft(key: string, value: unknown): void {
  try {
    if (value === undefined) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // storage full or disabled: the draft lives as long as the tab
  }
}
