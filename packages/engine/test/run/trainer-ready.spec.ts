import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { assertTrainerInstalled } from "../../src/run/trainer-ready.js";
import { tempDirsPerFile } from "../test-helpers.js";

/** An empty temp folder, removed when this file's tests are done. */
const empty = tempDirsPerFile("trainer-ready-");
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

  it("the built-in trainer needs the worker's python", () => {
    expect(() => assertTrainerInstalled("diffusers", { workerPython: join(empty(), "python") })).toThrow(expect.objectContaining({ code: "E_WORKER_NOT_INSTALLED", hint: expect.stringMatching(/loraspec setup worker/) }));
    expect(() => assertTrainerInstalled("diffusers", { workerPython: join(installed(), ".venv", "bin", "python") })).not.toThrow();
  });

  it.each([
    ["no key at all", {}, undefined, false],
    ["FAL_KEY empty", { FAL_KEY: "" }, undefined, false],
    ["FAL_KEY_ID without its secret", { FAL_KEY_ID: "id" }, undefined, false],
    ["FAL_KEY", { FAL_KEY: "k" }, undefined, true],
    ["FAL_KEY_ID + FAL_KEY_SECRET", { FAL_KEY_ID: "id", FAL_KEY_SECRET: "s" }, undefined, true],
    ["the key train passes", {}, "k", true],
  ] as const)("fal needs nothing installed but a key: %s", (_name, env, falKey, ready) => {
    const check = () => assertTrainerInstalled("fal", { env: { ...env }, ...(falKey ? { falKey } : {}) });
    if (ready) expect(check).not.toThrow();
    else expect(check).toThrow(expect.objectContaining({ code: "E_REMOTE_AUTH", field: "trainer.name", hint: expect.stringMatching(/export FAL_KEY=/) }));
  });

  it.each([
    ["adamw8bit without bitsandbytes in the worker's venv", "adamw8bit", false, "E_WORKER_PACKAGE_MISSING"],
    ["adamw8bit with it", "adamw8bit", true, undefined],
    ["adamw needs nothing more", "adamw", false, undefined],
  ] as const)("the built-in trainer's optimizer: %s", (_name, optimizer, withPackage, code) => {
    const dir = installed();
    const site = join(dir, ".venv", "lib", "python3.11", "site-packages");
    mkdirSync(site, { recursive: true });
    if (withPackage) mkdirSync(join(site, "bitsandbytes"));
    const check = () => assertTrainerInstalled("diffusers", { workerPython: join(dir, ".venv", "bin", "python"), optimizer });
    if (code) expect(check).toThrow(expect.objectContaining({ code, field: "hyperparameters.optimizer", hint: expect.stringMatching(/optimizer: adamw/) }));
    else expect(check).not.toThrow();
  });
});
