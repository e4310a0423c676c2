/**
 * Splits a process's output stream into lines on `\n`, `\r\n` and bare `\r` (tqdm redraws its bar
 * with `\r` and no newline, trainers.md §1.4). Chunks may cut anywhere, including between `\r`
 * and `\n`; feed them in order and call `flush()` at the end.
 */
export interface LineSplitter {
  push(chunk: string): string[];
  flush(): string[];
}

export function createLineSplitter(): LineSplitter {
  let buffer = "";
  let pendingCr = false;
  return {
    push(chunk: string): string[] {
      const lines: string[] = [];
      for (let i = 0; i < chunk.length; i++) {
        const ch = chunk[i];
        if (pendingCr) {
          pendingCr = false;
          if (ch === "\n") continue; // the \n of a \r\n pair: the line was already emitted
        }
        if (ch === "\n" || ch === "\r") {
          lines.push(buffer);
          buffer = "";
          pendingCr = ch === "\r";
        } else {
          buffer += ch;
        }
      }
      return lines;
    },
    flush(): string[] {
      const rest = buffer;
      buffer = "";
      pendingCr = false;
      return rest.length > 0 ? [rest] : [];
    },
  };
}

/** Splits a whole text at once (fixtures, log files). */
export function splitLines(text: string): string[] {
  const splitter = createLineSplitter();
  return [...splitter.push(text), ...splitter.flush()];
}
