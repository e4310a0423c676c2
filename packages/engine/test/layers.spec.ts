import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The web server is an edge: runs, datasets and LoRA files must work without it (the CLI uses
// them directly), so nothing outside server/ imports from server/.
const engineSrc = fileURLToPath(new URL("../src", import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith(".ts") ? [path] : [];
  });
}

describe("packages/engine layers", () => {
  it("imports nothing from server/ outside server/", () => {
    const offenders = files(engineSrc)
      .map((file) => relative(engineSrc, file).split("\\").join("/"))
      .filter((rel) => !rel.startsWith("server/"))
      .filter((rel) => /from\s+["'](\.\.?\/)+(\.\.\/)*server\//.test(readFileSync(join(engineSrc, rel), "utf8")));
    expect(offenders).toEqual([]);
  });
});
