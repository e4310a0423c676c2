import { isMap, isScalar, isSeq, parseDocument, stringify, type Document, type Pair, type YAMLMap } from "yaml";

/**
 * Form edits applied to the contract's YAML in place, through the `yaml` Document API's source
 * ranges: only the edited value's characters change, so key order, comments, blank lines, quoting
 * and flow style (`[1, 2, 3]`, `{ a: 1 }`) stay as the user wrote them. A cleared field's whole
 * line is taken out and remembered, so typing it again puts it back where it was, with its
 * comment. Every edit is checked by parsing the result; where the in-place splice cannot express
 * an edit (a whole new nested section, say), the Document is re-serialized instead.
 */

export type YamlPath = Array<string | number>;

/** Pairs taken out by clearing a field, by dotted path: put back where they were when retyped. */
export type RemovedPairs = Map<string, RemovedPair>;
interface RemovedPair {
  text: string;
  nextKey?: string;
  flow: boolean;
  /** Where it stood from the start of its flow map, for putting it back into an emptied `{ }`. */
  offsetInMap: number;
}

export interface YamlEdit {
  path: YamlPath;
  /** undefined removes the key. */
  value: unknown;
  /** What the user typed, kept as written when it means the same number (`1e-4` stays `1e-4`). */
  raw?: string;
}

export function editYaml(text: string, edit: YamlEdit, removed: RemovedPairs = new Map()): string {
  const doc = parseDocument(text);
  if (doc.errors.length) return text;
  let out: string | undefined;
  try {
    out = edit.value === undefined ? removeInPlace(text, doc, edit.path, removed) : setInPlace(text, doc, edit, removed);
  } catch {
    out = undefined;
  }
  if (out !== undefined && holds(out, edit)) return out;
  // The fallback: correct, but the Document's own formatting for everything.
  const d = parseDocument(text);
  if (edit.value === undefined) d.deleteIn(edit.path);
  else d.setIn(edit.path, edit.value);
  return d.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/** Whether the edited text parses and says what the edit meant. */
function holds(text: string, edit: YamlEdit): boolean {
  const d = parseDocument(text);
  if (d.errors.length) return false;
  if (edit.value === undefined) return !d.hasIn(edit.path);
  const got = d.getIn(edit.path, true);
  const js = isScalar(got) ? got.toJSON() : got && typeof got === "object" && "toJSON" in got ? (got as { toJSON(): unknown }).toJSON() : got;
  return JSON.stringify(js) === JSON.stringify(edit.value);
}

function setInPlace(text: string, doc: Document, edit: YamlEdit, removed: RemovedPairs): string | undefined {
  const { path, value, raw } = edit;
  const node = doc.getIn(path, true);
  const parent = containerOf(doc, path);
  const inFlow = Boolean(parent?.flow);
  if (isScalar(node) && node.range) {
    return splice(text, node.range[0], node.range[1], scalarSource(value, { raw, type: node.type, inFlow }));
  }
  if (isSeq(node) && node.flow && node.range && Array.isArray(value) && value.every((v) => v === null || typeof v !== "object")) {
    return splice(text, node.range[0], node.range[1], `[${value.map((v) => scalarSource(v, { inFlow: true })).join(", ")}]`);
  }
  if (node !== undefined) return undefined;
  const key = path[path.length - 1];
  if (!parent || typeof key !== "string") return path.length === 2 && !doc.hasIn(path.slice(0, 1)) ? appendSection(text, doc, path, value, raw) : undefined;
  const memory = removed.get(path.join("."));
  if (memory) {
    removed.delete(path.join("."));
    const restored = reinsert(text, parent, memory);
    return restored === undefined ? undefined : setInPlace(restored, parseDocument(restored), edit, removed);
  }
  const source = `${key}: ${scalarSource(value, { raw, inFlow })}`;
  const last = parent.items[parent.items.length - 1] as Pair<{ range?: [number, number, number] }, { range?: [number, number, number] }> | undefined;
  if (!last?.key?.range) return undefined;
  if (parent.flow) return splice(text, valueEnd(last), valueEnd(last), `, ${source}`);
  const at = lineEndAfter(text, last);
  const indent = column(text, last.key.range[0]);
  return splice(text, at, at, `${" ".repeat(indent)}${source}\n`);
}

function removeInPlace(text: string, doc: Document, path: YamlPath, removed: RemovedPairs): string | undefined {
  const parent = containerOf(doc, path);
  const key = path[path.length - 1];
  if (!parent) return doc.hasIn(path) ? undefined : text;
  const index = parent.items.findIndex((p) => keyOf(p) === key);
  if (index < 0) return text;
  const pair = parent.items[index] as Pair<{ range?: [number, number, number] }, { range?: [number, number, number] }>;
  const next = parent.items[index + 1] as Pair<{ range?: [number, number, number] }> | undefined;
  if (!pair.key?.range) return undefined;
  let start: number;
  let end: number;
  if (parent.flow) {
    if (next?.key?.range) [start, end] = [pair.key.range[0], next.key.range[0]];
    else if (index > 0) [start, end] = [valueEnd(parent.items[index - 1] as Pair), valueEnd(pair)];
    else [start, end] = [pair.key.range[0], valueEnd(pair)]; // the only pair: `{ a: 1 }` -> `{  }`
  } else {
    [start, end] = [lineStart(text, pair.key.range[0]), lineEndAfter(text, pair)];
  }
  removed.set(path.join("."), {
    text: text.slice(start, end),
    nextKey: next ? String(keyOf(next)) : undefined,
    flow: Boolean(parent.flow),
    offsetInMap: start - (parent.range?.[0] ?? 0),
  });
  return splice(text, start, end, "");
}

function reinsert(text: string, parent: YAMLMap, memory: RemovedPair): string | undefined {
  if (Boolean(parent.flow) !== memory.flow) return undefined;
  const next = memory.nextKey === undefined ? undefined : (parent.items.find((p) => String(keyOf(p)) === memory.nextKey) as Pair<{ range?: [number, number, number] }> | undefined);
  if (next?.key?.range) {
    const at = memory.flow ? next.key.range[0] : lineStart(text, next.key.range[0]);
    return splice(text, at, at, memory.text);
  }
  const last = parent.items[parent.items.length - 1] as Pair | undefined;
  if (!last) {
    if (!memory.flow || !parent.range) return undefined;
    const at = parent.range[0] + memory.offsetInMap;
    return splice(text, at, at, memory.text);
  }
  const at = memory.flow ? valueEnd(last) : lineEndAfter(text, last);
  return splice(text, at, at, memory.text);
}

/** A whole section that is not there yet (`section: { key }` edited from the form): appended at the end. */
function appendSection(text: string, doc: Document, path: YamlPath, value: unknown, raw?: string): string | undefined {
  if (!isMap(doc.contents) || doc.contents.flow) return undefined;
  const body = `${String(path[0])}:\n  ${String(path[1])}: ${scalarSource(value, { raw, inFlow: false })}\n`;
  return text.length === 0 || text.endsWith("\n") ? text + body : `${text}\n${body}`;
}

function containerOf(doc: Document, path: YamlPath): YAMLMap | undefined {
  const parent = path.length > 1 ? doc.getIn(path.slice(0, -1), true) : doc.contents;
  return isMap(parent) ? parent : undefined;
}

function keyOf(pair: unknown): unknown {
  const key = (pair as Pair).key;
  return isScalar(key) ? key.value : key;
}

/** The YAML source of a scalar (or a list of them): quoting kept, numbers as typed. */
function scalarSource(value: unknown, ctx: { raw?: string; type?: string; inFlow: boolean }): string {
  if (typeof value === "number") {
    const raw = ctx.raw?.trim();
    if (raw !== undefined && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw) && Number(raw) === value) return raw;
    return String(value);
  }
  if (typeof value === "boolean" || value === null) return String(value);
  if (Array.isArray(value)) return `[${value.map((v) => scalarSource(v, { inFlow: true })).join(", ")}]`;
  const s = String(value);
  if (ctx.type === "QUOTE_DOUBLE") return JSON.stringify(s);
  if (ctx.type === "QUOTE_SINGLE") return `'${s.replace(/'/g, "''")}'`;
  const plain = stringify(s, { lineWidth: 0 }).replace(/\n$/, "");
  if (plain.includes("\n") || (ctx.inFlow && /[,[\]{}]/.test(plain))) return JSON.stringify(s);
  return plain;
}

function splice(text: string, start: number, end: number, insert: string): string {
  return text.slice(0, start) + insert + text.slice(end);
}

function valueEnd(pair: Pair): number {
  const v = pair.value as { range?: [number, number, number] } | null;
  const k = pair.key as { range?: [number, number, number] } | null;
  return v?.range?.[1] ?? k?.range?.[1] ?? 0;
}

function lineStart(text: string, at: number): number {
  return text.lastIndexOf("\n", at - 1) + 1;
}

/** The end of a block pair's last line, newline included (its trailing comment with it). */
function lineEndAfter(text: string, pair: Pair): number {
  const v = pair.value as { range?: [number, number, number] } | null;
  const end = v?.range?.[1] ?? valueEnd(pair);
  if (end > 0 && text[end - 1] === "\n") return end;
  const nl = text.indexOf("\n", end);
  return nl < 0 ? text.length : nl + 1;
}

function column(text: string, at: number): number {
  return at - lineStart(text, at);
}
