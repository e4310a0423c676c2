/**
 * The safetensors header JSON, read the way the reference reader reads it (serde_json into
 * safetensors' `HashMetadata` with `#[serde(flatten)]`, checked against the Python package's
 * verdicts in packages/engine/test/lora/header-rules.spec.ts). Pure; one pass; schema-directed,
 * so a 100 MB header builds no generic JSON tree. The rules:
 * - strict JSON: no BOM, no trailing characters, control characters and bad escapes refused,
 *   a lone UTF-16 surrogate escape refused, a float literal out of range refused;
 * - nesting at most 127 levels (serde_json's recursion limit of 128, the root included);
 * - shape and data_offsets hold unsigned 64-bit integer literals only (`1.0`, `1e0`, `-0` refused);
 * - a tensor entry is an object (unknown fields ignored, a repeated known field refused) or the
 *   array [dtype, shape, data_offsets];
 * - `__metadata__` is null or an object of strings and may appear once; a repeated tensor name
 *   keeps the last entry (HashMap semantics), as does a repeated metadata key.
 */
import { DTYPES, type Dtype } from "./dtype.js";

/** Limits and rules, as data. */
export const HEADER_JSON_RULES = {
  source: "serde_json 1.x (recursion limit 128, u64/i64/f64 number classes) + huggingface/safetensors tensor.rs HashMetadata; verdicts checked against safetensors 0.8.0",
  asOf: "2026-12-02",
  maxDepth: 127,
} as const;

/** An unsigned 64-bit integer from the header: a number when it is a safe integer, else a bigint. */
export type U64 = number | bigint;

export interface RawEntry {
  name: string;
  dtype: Dtype;
  shape: U64[];
  offsets: [U64, U64];
}

export class HeaderJsonError extends Error {
  constructor(message: string, readonly tensor?: string) {
    super(message);
  }
}

const DTYPE_SET = new Set<string>(DTYPES);
const U64_MAX = 2n ** 64n - 1n;
const ESCAPES = new Map(Object.entries({ '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" }));
const SPECIAL = /[\\\u0000-\u001f]/;
const PLAIN = /[^"\\\u0000-\u001f]*/y;
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

type Num = { kind: "u64"; value: U64 } | { kind: "i64" | "f64"; text: string };

class Reader {
  i = 0;
  depth = 0;
  constructor(readonly s: string) {}

  fail(why: string, tensor?: string): never {
    throw new HeaderJsonError(`${why} at character ${this.i}`, tensor);
  }

  ws(): void {
    const s = this.s;
    let c = s.charCodeAt(this.i);
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = s.charCodeAt(++this.i);
  }

  peek(): number {
    this.ws();
    return this.s.charCodeAt(this.i);
  }

  expect(ch: number, what: string): void {
    if (this.peek() !== ch) this.fail(`expected ${what}`);
    this.i++;
  }

  enter(): void {
    if (++this.depth > HEADER_JSON_RULES.maxDepth) this.fail("recursion limit exceeded");
  }

  string(): string {
    if (this.peek() !== 0x22) this.fail("expected a string");
    this.i++;
    // Fast path: no escape and no control character before the closing quote.
    const close = this.s.indexOf('"', this.i);
    if (close >= 0) {
      const body = this.s.slice(this.i, close);
      if (!SPECIAL.test(body)) {
        this.i = close + 1;
        return body;
      }
    }
    let out = "";
    for (;;) {
      PLAIN.lastIndex = this.i;
      PLAIN.exec(this.s);
      out += this.s.slice(this.i, PLAIN.lastIndex);
      this.i = PLAIN.lastIndex;
      const c = this.s.charCodeAt(this.i);
      if (c === 0x22) {
        this.i++;
        return out;
      }
      if (c !== 0x5c) this.fail(Number.isNaN(c) ? "EOF while parsing a string" : "control character in a string");
      out += this.escape();
    }
  }

  private hex4(): number {
    const h = this.s.slice(this.i, this.i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail("invalid \\u escape");
    this.i += 4;
    return parseInt(h, 16);
  }

  private escape(): string {
    const e = this.s[this.i + 1];
    this.i += 2;
    const simple = e === undefined ? undefined : ESCAPES.get(e);
    if (simple !== undefined) return simple;
    if (e !== "u") this.fail("invalid escape");
    const hi = this.hex4();
    if (hi >= 0xdc00 && hi <= 0xdfff) this.fail("lone trailing surrogate in hex escape");
    if (hi < 0xd800 || hi > 0xdbff) return String.fromCharCode(hi);
    if (this.s[this.i] !== "\\" || this.s[this.i + 1] !== "u") this.fail("lone leading surrogate in hex escape");
    this.i += 2;
    const lo = this.hex4();
    if (lo < 0xdc00 || lo > 0xdfff) this.fail("lone leading surrogate in hex escape");
    return String.fromCharCode(hi, lo);
  }

  number(): Num {
    this.ws();
    NUMBER.lastIndex = this.i;
    const m = NUMBER.exec(this.s);
    if (!m) this.fail("expected value");
    this.i = NUMBER.lastIndex;
    const text = m[0];
    if (m[1] !== undefined || m[2] !== undefined) {
      if (!Number.isFinite(Number(text))) this.fail("number out of range");
      return { kind: "f64", text };
    }
    if (text.startsWith("-")) return { kind: text === "-0" || BigInt(text) < -(2n ** 63n) ? "f64" : "i64", text };
    if (text.length < 16) return { kind: "u64", value: Number(text) };
    const big = BigInt(text);
    if (big > U64_MAX) return { kind: "f64", text };
    return { kind: "u64", value: big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big };
  }

  /** Any JSON value, checked and dropped (an unknown field). */
  skip(): void {
    const c = this.peek();
    if (c === 0x22) this.string();
    else if (c === 0x7b || c === 0x5b) {
      this.enter();
      this.i++;
      const close = c === 0x7b ? 0x7d : 0x5d;
      if (this.peek() === close) this.i++;
      else {
        for (;;) {
          if (c === 0x7b) {
            this.string();
            this.expect(0x3a, "':'");
          }
          this.skip();
          const n = this.peek();
          this.i++;
          if (n === close) break;
          if (n !== 0x2c) this.fail("expected ',' or a closing bracket");
        }
      }
      this.depth--;
    } else if (this.s.startsWith("true", this.i)) this.i += 4;
    else if (this.s.startsWith("false", this.i)) this.i += 5;
    else if (this.s.startsWith("null", this.i)) this.i += 4;
    else this.number();
  }

  /** Iterates the members of an object (keys) or the items of an array (undefined keys). */
  *members(open: number): Generator<string | undefined> {
    const close = open === 0x7b ? 0x7d : 0x5d;
    this.expect(open, open === 0x7b ? "an object" : "an array");
    this.enter();
    if (this.peek() === close) this.i++;
    else {
      for (;;) {
        let key: string | undefined;
        if (open === 0x7b) {
          key = this.string();
          this.expect(0x3a, "':'");
        }
        yield key;
        const n = this.peek();
        this.i++;
        if (n === close) break;
        if (n !== 0x2c) this.fail("expected ',' or a closing bracket");
      }
    }
    this.depth--;
  }

  u64List(tensor: string, what: string): U64[] {
    const out: U64[] = [];
    if (this.peek() !== 0x5b) this.fail(`${what} is not an array`, tensor);
    for (const _ of this.members(0x5b)) {
      const n = this.number();
      if (n.kind !== "u64") this.fail(`${what} holds ${n.text}, expected an unsigned integer`, tensor);
      out.push(n.value);
    }
    return out;
  }
}

// The reference writer's own spelling of an entry: read with one native regex match (most files).
const INT = "(?:0|[1-9]\\d*)";
const CANONICAL = new RegExp(`\\{"dtype":"([A-Z0-9_]+)","shape":\\[((?:${INT}(?:,${INT})*)?)\\],"data_offsets":\\[(${INT}),(${INT})\\]\\}`, "y");

function u64Of(text: string): U64 | undefined {
  if (text.length < 16) return Number(text);
  const big = BigInt(text);
  return big > U64_MAX ? undefined : big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}

function canonicalEntry(r: Reader, name: string): RawEntry | undefined {
  CANONICAL.lastIndex = r.i;
  const m = CANONICAL.exec(r.s);
  if (!m || !DTYPE_SET.has(m[1]!)) return undefined;
  const shape = m[2] === "" ? [] : m[2]!.split(",").map(u64Of);
  const begin = u64Of(m[3]!), end = u64Of(m[4]!);
  if (begin === undefined || end === undefined || shape.some((d) => d === undefined)) return undefined;
  r.i = CANONICAL.lastIndex;
  return { name, dtype: m[1] as Dtype, shape: shape as U64[], offsets: [begin, end] };
}

function entry(r: Reader, name: string): RawEntry {
  const c = r.peek();
  if (c === 0x7b && r.depth + 2 <= HEADER_JSON_RULES.maxDepth) {
    const fast = canonicalEntry(r, name);
    if (fast) return fast;
  }
  let dtype: string | undefined, shape: U64[] | undefined, offsets: U64[] | undefined;
  if (c === 0x5b) {
    let n = 0;
    for (const _ of r.members(0x5b)) {
      if (n === 0) dtype = r.string();
      else if (n === 1) shape = r.u64List(name, "shape");
      else if (n === 2) offsets = r.u64List(name, "data_offsets");
      else r.fail("a tensor entry array has more than 3 items", name);
      n++;
    }
  } else if (c === 0x7b) {
    for (const key of r.members(0x7b)) {
      const seen = key === "dtype" ? dtype : key === "shape" ? shape : key === "data_offsets" ? offsets : undefined;
      if (seen !== undefined) r.fail(`duplicate field \`${key}\``, name);
      if (key === "dtype") dtype = r.string();
      else if (key === "shape") shape = r.u64List(name, "shape");
      else if (key === "data_offsets") offsets = r.u64List(name, "data_offsets");
      else r.skip();
    }
  } else r.fail("a tensor entry is not an object", name);
  if (dtype === undefined || shape === undefined || offsets === undefined) r.fail("a tensor entry lacks dtype, shape or data_offsets", name);
  if (!DTYPE_SET.has(dtype!)) r.fail(`unknown dtype ${JSON.stringify(dtype)}`, name);
  if (offsets!.length !== 2) r.fail("data_offsets is not [begin, end]", name);
  return { name, dtype: dtype as Dtype, shape: shape!, offsets: [offsets![0]!, offsets![1]!] };
}

/** Parses header text; throws HeaderJsonError (the reference's "invalid JSON in header"). */
export function parseHeaderJson(text: string): { metadata: Record<string, string>; entries: RawEntry[] } {
  const r = new Reader(text);
  const metadata = new Map<string, string>();
  let sawMetadata = false;
  const byName = new Map<string, RawEntry>();
  if (r.peek() !== 0x7b) r.fail(Number.isNaN(r.peek()) ? "EOF while parsing a value" : "expected an object");
  for (const key of r.members(0x7b)) {
    if (key === "__metadata__") {
      if (sawMetadata) r.fail("duplicate field `__metadata__`");
      sawMetadata = true;
      if (r.peek() === 0x6e && r.s.startsWith("null", r.i)) {
        r.i += 4;
        continue;
      }
      if (r.peek() !== 0x7b) r.fail("__metadata__ is not an object");
      for (const k of r.members(0x7b)) metadata.set(k!, r.peek() === 0x22 ? r.string() : r.fail(`__metadata__ value "${k}" is not a string`));
      continue;
    }
    byName.set(key!, entry(r, key!));
  }
  r.ws();
  if (r.i < text.length) r.fail("trailing characters");
  // Own properties even for "__proto__" (no prototype games with header text).
  return { metadata: Object.fromEntries(metadata), entries: [...byName.values()] };
}
