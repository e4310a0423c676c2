import { describe, expect, it } from "vitest";
import { createLineSplitter, splitLines } from "@loraspec/core/parse/split-lines.js";

describe("createLineSplitter", () => {
  it.each([
    ["\\n", "a\nb\n", ["a", "b"]],
    ["\\r (tqdm redraw)", "a\rb\r", ["a", "b"]],
    ["\\r\\n as one break", "a\r\nb\r\n", ["a", "b"]],
    ["blank lines kept", "a\n\nb\n", ["a", "", "b"]],
    ["unterminated tail on flush", "a\nb", ["a", "b"]],
  ])("splits on %s", (_name, text, lines) => {
    expect(splitLines(text)).toEqual(lines);
  });

  it("gives the same lines whatever the chunk boundaries, \\r\\n cut in half included", () => {
    const text = "steps:  0%|  | 0/6 [00:00<?, ?it/s]\rsteps: 17%|▏ | 1/6 [00:04<00:20, 4.04s/it]\r\nsaving checkpoint: x\nend";
    const whole = splitLines(text);
    for (let size = 1; size <= 7; size++) {
      const splitter = createLineSplitter();
      const lines: string[] = [];
      for (let i = 0; i < text.length; i += size) lines.push(...splitter.push(text.slice(i, i + size)));
      lines.push(...splitter.flush());
      expect(lines).toEqual(whole);
    }
    expect(whole).toHaveLength(4);
  });
});
