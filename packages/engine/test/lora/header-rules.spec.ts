import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { parseHeaderLength, parseSafetensorsHeader } from "@loraspec/core/lora/safetensors-header.js";
import { HAS_PYTHON, oracle, tempDir } from "./helpers.js";

/**
 * The header rules of the reference reader (serde_json + safetensors' HashMetadata), each case with
 * the verdict safetensors 0.8.0 gives; the Python package re-checks every verdict when present.
 */
const E = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}';
const T = (shape: string, begin: string | number = 0, end: string | number = 0, dtype = "U8") => `{"a":{"dtype":"${dtype}","shape":${shape},"data_offsets":[${begin},${end}]}}`;
const nest = (d: number, open: string, close: string, inner = "1") => open.repeat(d) + inner + close.repeat(d);
const CASES: Array<[string, string, number, boolean]> = [
  ["plain", T("[1]", 0, 1), 1, true],
  ["float shape 1.0", T("[1.0]", 0, 1), 1, false],
  ["exponent shape 1e0", T("[1e0]", 0, 1), 1, false],
  ["shape -0", T("[-0]"), 0, false],
  ["offset -0", '{"a":{"dtype":"U8","shape":[0],"data_offsets":[-0,0]}}', 0, false],
  ["float offset", T("[1]", 0, "1.0"), 1, false],
  ["shape +1", T("[+1]", 0, 1), 1, false],
  ["shape 01", T("[01]", 0, 1), 1, false],
  ["shape -1", T("[-1]", 0, 1), 1, false],
  ["shape null", '{"a":{"dtype":"U8","shape":null,"data_offsets":[0,0]}}', 0, false],
  ["zero elements, huge dim [0, 2^62]", T(`[0,${2n ** 62n}]`), 0, true],
  ["zero elements, huge dim [2^62, 0]", T(`[${2n ** 62n},0]`), 0, true],
  ["zero elements, F32 [2^63, 0]", T(`[${2n ** 63n},0]`, 0, 0, "F32"), 0, true],
  ["overflow before the zero [2^62, 8, 0]", T(`[${2n ** 62n},8,0]`), 0, false],
  ["u64 max dim [0, 2^64-1]", T(`[0,${2n ** 64n - 1n}]`), 0, true],
  ["dim past u64 [0, 2^64]", T(`[0,${2n ** 64n}]`), 0, false],
  ["offsets at u64 max", `{"a":{"dtype":"U8","shape":[0],"data_offsets":[${2n ** 64n - 1n},${2n ** 64n - 1n}]}}`, 0, false],
  ["lone leading surrogate in a key", '{"\\ud800":' + E + "}", 1, false],
  ["lone trailing surrogate in a key", '{"\\udc00":' + E + "}", 1, false],
  ["leading surrogate then a non-surrogate", '{"\\ud800\\u0041":' + E + "}", 1, false],
  ["surrogate pair", '{"\\ud83d\\ude00":' + E + "}", 1, true],
  ["lone surrogate in metadata", '{"__metadata__":{"x":"\\udc00"},"a":' + E + "}", 1, false],
  ["depth 127 (arrays in an unknown field)", `{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":${nest(125, "[", "]", "")}}}`, 1, true],
  ["depth 128 (arrays)", `{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":${nest(126, "[", "]", "")}}}`, 1, false],
  ["depth 127 (objects)", `{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":${nest(125, '{"k":', "}")}}}`, 1, true],
  ["depth 128 (objects)", `{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":${nest(126, '{"k":', "}")}}}`, 1, false],
  ["unknown field", '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}}', 1, true],
  ["unknown field repeated", '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1,"x":2}}', 1, true],
  ["known field repeated", '{"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 1, false],
  ["-0 in an unknown field", '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":-0}}', 1, true],
  ["1e400 in an unknown field", '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1e400}}', 1, false],
  ["1e400 in a shape", T("[1e400]", 0, 1), 1, false],
  ["entry as an array", '{"a":["U8",[1],[0,1]]}', 1, true],
  ["entry null", '{"a":null}', 0, false],
  ["three offsets", '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}', 1, false],
  ["lower-case dtype", T("[1]", 0, 1, "u8"), 1, false],
  ["tensor name repeated, same entry (last wins)", `{"a":${E},"a":${E}}`, 1, true],
  ["tensor name repeated via an escape (last wins, then a gap)", `{"a":${E},"\\u0061":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2, false],
  ["metadata key repeated", '{"__metadata__":{"x":"1","x":"2"}}', 0, true],
  ["__metadata__ repeated", '{"__metadata__":{"x":"1"},"__metadata__":{"y":"2"}}', 0, false],
  ["__metadata__ null", '{"__metadata__":null,"a":' + E + "}", 1, true],
  ["__metadata__ array", '{"__metadata__":[]}', 0, false],
  ["metadata value null", '{"__metadata__":{"x":null}}', 0, false],
  ["metadata value number", '{"__metadata__":{"x":1}}', 0, false],
  ["control character in a key", '{"a\u0001":' + E + "}", 1, false],
  ["DEL in a key", '{"a\u007f":' + E + "}", 1, true],
  ["invalid escape", '{"\\x":' + E + "}", 1, false],
  ["escaped key", '{"\\u0061":' + E + "}", 1, true],
  ["trailing garbage", T("[1]", 0, 1) + "x", 1, false],
  ["trailing NUL", T("[1]", 0, 1) + "\u0000", 1, false],
  ["trailing whitespace", T("[1]", 0, 1) + " \n\t\r", 1, true],
  ["leading BOM", "\ufeff" + T("[1]", 0, 1), 1, false],
  ["empty header", "", 0, false],
  ["empty object", "{}", 0, true],
];

function fileBytes(header: string, dataBytes: number): Uint8Array {
  const text = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + text.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  return out;
}

function ours(bytes: Uint8Array): boolean {
  try {
    const n = parseHeaderLength(bytes.subarray(0, 8), bytes.length);
    parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.length);
    return true;
  } catch (error) {
    if (!isLoraspecError(error)) throw error;
    expect(error.code).toBe("E_SAFETENSORS_INVALID");
    return false;
  }
}

describe("safetensors header JSON: the reference reader's rules", () => {
  it.each(CASES)("%s", (_name, header, data, valid) => {
    expect(ours(fileBytes(header, data))).toBe(valid);
  });

  it.runIf(HAS_PYTHON)("the reference Python package gives every verdict of the table", async () => {
    const dir = await tempDir();
    await Promise.all(CASES.map(([, header, data], i) => writeFile(join(dir, `${String(i).padStart(3, "0")}.safetensors`), fileBytes(header, data))));
    const verdicts = oracle("safetensors_verdict.py", [dir]) as Record<string, string>;
    const got = CASES.map(([name], i) => [name, verdicts[join(dir, `${String(i).padStart(3, "0")}.safetensors`)] === "ok"]);
    expect(got).toEqual(CASES.map(([name, , , valid]) => [name, valid]));
  });

  // Its speed against JSON.parse of the same text is a benchmark (bench/header-parse-bench.ts, RESULTS "LoRA files"), not a timed test.
  it("a 100 MB header with ~650k tensors parses whole, every entry kept", () => {
    const parts: string[] = [];
    const entry = (i: number) => `"lora_unet_single_blocks_${i}_linear1.lora_down.weight_padding_to_make_it_long_${"x".repeat(20)}":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`;
    let len = 2;
    for (let i = 0; len < 99_000_000; i++) {
      const e = entry(i);
      parts.push(e);
      len += e.length + 1;
    }
    const bytes = fileBytes(`{${parts.join(",")}}`, 0);
    const n = parseHeaderLength(bytes.subarray(0, 8), bytes.length);
    const h = parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.length);
    expect(parts.length).toBeGreaterThan(500_000);
    expect(h.tensors.length).toBe(parts.length);
    expect(h.tensors.at(-1)?.name).toBe(Object.keys(JSON.parse(`{${parts.at(-1)}}`))[0]);
  }, 120_000);
});
