import { isCollection, isMap, isPair, isScalar, LineCounter, parseDocument, visit, type Document, type Node, type YAMLError } from "yaml";
import type { z } from "zod";
import { LoraspecError } from "../errors.js";
import { BASE_MODEL_IDS } from "../knowledge/base-models.js";
import { ContractSchema, TRAINER_IDS, type Contract } from "./schema.js";

/** One schema or syntax problem, located in the file. */
export interface ContractProblem {
  line?: number;
  /** 1-based column (YAML syntax errors). */
  column?: number;
  field: string;
  message: string;
}

export interface ParseContractParams {
  /** The YAML text. */
  text: string;
  /** The file name as the user named it (used in messages). */
  file?: string;
}

/**
 * Parses `lora.yaml` text into a Contract (defaults filled in). Pure: runs in the browser too.
 * YAML syntax errors -> E_YAML_SYNTAX; schema errors -> E_CONTRACT_INVALID (or
 * E_UNKNOWN_BASE_MODEL / E_UNKNOWN_TRAINER), each naming the file, the line, the field path and
 * what is allowed. Every problem is in `details.problems`.
 */
export function parseContractText({ text, file = "lora.yaml" }: ParseContractParams): Contract {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((e) => syntaxProblem(e, doc, lineCounter, text));
    const first = problems[0]!;
    throw new LoraspecError("E_YAML_SYNTAX", `YAML syntax at line ${first.line}, column ${first.column}: ${first.message}`, {
      file,
      line: first.line,
      hint: "Fix the YAML syntax at that line (indentation, a missing colon, bracket or quote).",
      details: { problems },
    });
  }
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) {
    throw new LoraspecError("E_CONTRACT_INVALID", "the contract is empty", { file, line: 1, hint: "Run `loraspec init` to write a complete lora.yaml." });
  }
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new LoraspecError("E_CONTRACT_INVALID", "expected a mapping of contract fields (version, name, base, trainer, ...)", {
      file,
      line: 1,
      hint: "Start from `loraspec init` to get a complete lora.yaml.",
    });
  }
  const result = ContractSchema.safeParse(data);
  if (result.success) return result.data;
  throw contractError(result.error.issues, doc, lineCounter, file, data);
}

/**
 * Where a YAML syntax error really is. The parser notices an unclosed `[`, `{` or quote only where
 * the text can no longer continue it (often lines later); point at the opener instead.
 */
function syntaxProblem(error: YAMLError, doc: Document, lineCounter: LineCounter, text: string): ContractProblem {
  const pos = error.pos[0];
  let opener: { at: number; char: string } | undefined;
  visit(doc, (_key, node) => {
    const range = (node as Node).range;
    if (!range || range[0] >= pos || range[1] + 1 < pos) return;
    const flow = isCollection(node) && node.flow;
    const quote = isScalar(node) ? ({ QUOTE_DOUBLE: '"', QUOTE_SINGLE: "'" } as Record<string, string>)[node.type ?? ""] : undefined;
    if (!flow && !quote) return;
    const open = flow ? (isMap(node) ? "{" : "[") : quote!;
    const close = flow ? (isMap(node) ? "}" : "]") : quote!;
    const written = text.slice(range[0], range[1]).trimEnd();
    if (written.length < 2 || !written.endsWith(close)) opener = { at: range[0], char: open };
  });
  if (opener) {
    const { line, col } = lineCounter.linePos(opener.at);
    return { line, column: col, field: "", message: `'${opener.char}' opened here is never closed (${firstLine(error.message)})` };
  }
  const { line, col } = lineCounter.linePos(pos);
  return { line, column: col, field: "", message: firstLine(error.message) };
}

function contractError(
  issues: readonly z.core.$ZodIssue[],
  doc: Document,
  lineCounter: LineCounter,
  file: string,
  data: unknown,
): LoraspecError {
  const problems: ContractProblem[] = issues.map((issue) => describeIssue(issue, doc, lineCounter, data));
  problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  const first = problems[0]!;
  const firstIssue = issues.find((i) => pathString(i.path) === first.field) ?? issues[0]!;
  const isField = (f: string) => firstIssue.code === "invalid_value" && pathString(firstIssue.path) === f;
  const code = isField("base.model") ? "E_UNKNOWN_BASE_MODEL" : isField("trainer.name") ? "E_UNKNOWN_TRAINER" : "E_CONTRACT_INVALID";
  const more = problems.slice(1).map((p) => `\n  ${file}${p.line ? `:${p.line}` : ""}: ${p.field || "(top level)"}: ${p.message}`);
  const hint =
    code === "E_UNKNOWN_BASE_MODEL"
      ? `Use one of the known base models: ${BASE_MODEL_IDS.join(", ")}.`
      : code === "E_UNKNOWN_TRAINER"
        ? `Use one of the trainers: ${TRAINER_IDS.join(", ")}.`
        : "See schema/lora-contract.schema.json or run `loraspec init` for a complete example.";
  return new LoraspecError(code, first.message + (more.length ? `\n${more.length} more problem(s):${more.join("")}` : ""), {
    file,
    line: first.line,
    field: first.field || undefined,
    hint,
    details: { problems },
  });
}

function describeIssue(issue: z.core.$ZodIssue, doc: Document, lineCounter: LineCounter, data: unknown): ContractProblem {
  const path = issue.path.map((p) => (typeof p === "symbol" ? String(p) : p));
  const got = valueAt(data, path);
  let field = pathString(path);
  let line = lineOf(doc, lineCounter, path);
  let message: string;
  switch (issue.code) {
    case "invalid_value":
      message = `${got === undefined ? "missing" : `got ${show(got)}`}, expected ${issue.values.length === 1 ? show(issue.values[0]) : `one of ${issue.values.map(String).join(", ")}`}`;
      break;
    case "invalid_type":
      if (typeof got === "number" && !Number.isFinite(got)) {
        const written = nodeSource(doc, path);
        const expected = issue.expected === "number" ? "expected a finite number" : `expected ${issue.expected}`;
        // YAML's .nan / .inf are not overflows (they said "overflows a 64-bit number"): name what they are.
        if (Number.isNaN(got)) message = `got ${written ?? "NaN"} (YAML's not-a-number), ${expected}`;
        else if (written !== undefined && /^[-+]?\.inf$/i.test(written.trim())) message = `got ${written} (YAML's infinity), ${expected}`;
        else message = `${written ?? String(got)} overflows a 64-bit number (largest ~1.8e308)${issue.expected === "number" ? "" : `; expected ${issue.expected}`}`;
        break;
      }
      // A key with nothing after it (`hyperparameters:`) reads as null: it said "got null null".
      if (got === null) message = `is empty (nothing after the key reads as null), expected ${issue.expected === "object" ? "its fields below it (or leave an optional section out)" : issue.expected}`;
      else message = got === undefined ? `missing, expected ${issue.expected}` : `got ${typeName(got)} ${show(got)}, expected ${issue.expected}`;
      break;
    case "unrecognized_keys": {
      const key = issue.keys[0]!;
      field = pathString([...path, key]);
      line = keyLine(doc, lineCounter, path, key) ?? line;
      const allowed = allowedKeys(path);
      message = `unknown field${issue.keys.length > 1 ? `s ${issue.keys.join(", ")}` : ""}${allowed ? `; allowed here: ${allowed.join(", ")}` : ""}`;
      break;
    }
    case "too_small":
      message = `got ${show(got)}, expected ${issue.origin === "array" ? "at least" : issue.inclusive ? ">=" : ">"} ${String(issue.minimum)}${issue.origin === "array" ? " item(s)" : ""}`;
      break;
    case "too_big":
      if (typeof got === "string") {
        message = `${got.length} characters, at most ${String(issue.maximum)} allowed`;
        break;
      }
      message = `got ${show(got)}, expected ${issue.inclusive ? "<=" : "<"} ${String(issue.maximum)}`;
      break;
    case "invalid_format":
      message = `got ${show(got)}: ${issue.message}`;
      break;
    default:
      message = got === undefined ? issue.message : `got ${show(got)}: ${issue.message}`;
  }
  return { line, field, message };
}

function pathString(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i > 0 ? "." : ""}${String(p)}`)).join("");
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = data;
  for (const key of path) {
    if (typeof cur !== "object" || cur === null) return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

/** Line of the node at `path`, or of its deepest existing parent (a missing field points at its parent). */
function lineOf(doc: Document, lineCounter: LineCounter, path: readonly PropertyKey[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const sub = path.slice(0, n) as (string | number)[];
    if (n > 0) {
      // Prefer the key's line for a mapping value (where the user typed the field name).
      const parent = n === 1 ? doc.contents : doc.getIn(sub.slice(0, -1), true);
      const key = sub[sub.length - 1];
      if (isMap(parent) && typeof key === "string") {
        const l = keyLine(doc, lineCounter, sub.slice(0, -1), key);
        if (l !== undefined) return l;
      }
    }
    const node = (n === 0 ? doc.contents : doc.getIn(sub, true)) as Node | null | undefined;
    const offset = node?.range?.[0];
    if (offset !== undefined) return lineCounter.linePos(offset).line;
  }
  return undefined;
}

function keyLine(doc: Document, lineCounter: LineCounter, parentPath: readonly PropertyKey[], key: string): number | undefined {
  const parent = parentPath.length === 0 ? doc.contents : doc.getIn(parentPath as (string | number)[], true);
  if (!isMap(parent)) return undefined;
  for (const pair of parent.items) {
    if (isPair(pair) && isScalar(pair.key) && pair.key.value === key && pair.key.range) return lineCounter.linePos(pair.key.range[0]).line;
  }
  return undefined;
}

function allowedKeys(path: readonly PropertyKey[]): string[] | undefined {
  let schema: unknown = ContractSchema;
  for (const key of path) {
    const shape = shapeOf(schema);
    if (!shape || typeof key !== "string") return undefined;
    schema = shape[key];
  }
  const shape = shapeOf(schema);
  return shape ? Object.keys(shape) : undefined;
}

function shapeOf(schema: unknown): Record<string, unknown> | undefined {
  let s = schema as { shape?: Record<string, unknown>; unwrap?: () => unknown; def?: { innerType?: unknown } } | undefined;
  for (let i = 0; i < 4 && s; i++) {
    if (s.shape) return s.shape;
    s = (s.def?.innerType ?? (typeof s.unwrap === "function" ? s.unwrap() : undefined)) as typeof s;
  }
  return undefined;
}

/** The number as the user wrote it (1e309), not as JavaScript holds it (Infinity). */
function nodeSource(doc: Document, path: readonly PropertyKey[]): string | undefined {
  const node = doc.getIn(path as (string | number)[], true);
  return isScalar(node) && typeof node.source === "string" ? node.source : undefined;
}

/** Long values are cut: the message must stay one line. */
const SHOWN_CHARS = 60;

function show(value: unknown): string {
  if (typeof value === "string") return value.length > SHOWN_CHARS ? `'${value.slice(0, SHOWN_CHARS)}...' (${value.length} characters)` : `'${value}'`;
  if (value === undefined) return "nothing";
  return JSON.stringify(value);
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "list";
  if (typeof value === "object") return "mapping";
  return typeof value;
}

function firstLine(s: string): string {
  return s.split("\n")[0] ?? s;
}
