// One version for the npm package, the CLI's --version, the worker wheel and the worker itself:
// `npm pack` ships them together, and doctor / setup compare what is installed against them.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { VERSION } from "../src/main.js";

const repo = fileURLToPath(new URL("../../..", import.meta.url));
const read = (rel: string) => readFileSync(join(repo, rel), "utf8");

describe("versions", () => {
  it("package.json, the CLI, worker/pyproject.toml and loraspec_worker agree", () => {
    const version = JSON.parse(read("package.json")).version as string;
    expect({
      cli: VERSION,
      pyproject: read("worker/pyproject.toml").match(/^version = "([^"]+)"/m)?.[1],
      worker: read("worker/loraspec_worker/__init__.py").match(/^__version__ = "([^"]+)"/m)?.[1],
    }).toEqual({ cli: version, pyproject: version, worker: version });
  });
});
