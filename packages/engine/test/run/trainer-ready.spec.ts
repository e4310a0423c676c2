import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { assertTrainerInstalled } from "../../src/run/trainer-ready.js";

const empty = () => mkdtempSync(join(tmpdir(), "trainer-ready-"));
function installed(): string {
  const dir = empty();
  mkdirSync(join(dir, ".venv", "bin"), { recursive: true });
  writeFileSync(join(dir, ".venv", "bin", "python"), "");
  return dir;
}

describe("assertTrainerInstalled: train refuses a local trainer that is not there", () => {
  it.each([
    ["kohya", "LORASPEC_KOHYA_DIR", /loraspec setup kohya/],
    ["ai-toolkit", "LORASPEC_AI_TOOLKIT_DIR", /loraspec setup ai-toolkit/],
  ] as const)("%s: missing -> E_WORKER_NOT_INSTALLED with the setup command; installed -> ok", (trainer, variable, hint) => {
    expect(() => assertTrainerInstalled(trainer, { env: { [variable]: empty() } })).toThrow(expect.objectContaining({ code: "E_WORKER_NOT_INSTALLED", hint: expect.stringMatching(hint) }));
    expect(() => assertTrainerInstalled(trainer, { env: { [variable]: installed() } })).not.toThrow();
  });

  it("the built-in trainer needs the worker's python; fal needs nothing local", () => {
    expect(() => assertTrainerInstalled("diffusers", { workerPython: join(empty(), "python") })).toThrow(expect.objectContaining({ code: "E_WORKER_NOT_INSTALLED", hint: expect.stringMatching(/loraspec setup worker/) }));
    expect(() => assertTrainerInstalled("diffusers", { workerPython: join(installed(), ".venv", "bin", "python") })).not.toThrow();
    expect(() => assertTrainerInstalled("fal", { env: {} })).not.toThrow();
  });
});
