import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The core runs in the browser too (the web page lints contracts live): no Node built-ins there.
const coreSrc = fileURLToPath(new URL("../src", import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith(".ts") ? [path] : [];
  });
}

describe("packages/core", () => {
  it("imports no Node built-ins and nothing from the engine", () => {
    const offenders = files(coreSrc).filter((file) => {
      const text = readFileSync(file, "utf8");
      return /from\s+["'](node:|fs|path|child_process|os|@loraspec\/engine)/.test(text) || /import\(["']node:/.test(text);
    });
    expect(offenders).toEqual([]);
  });
});
