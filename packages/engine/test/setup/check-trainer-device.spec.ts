import { describe, expect, it } from "vitest";
import { checkTrainerDevice } from "@loraspec/engine/setup/check-trainer-device.js";
import { trainerPaths } from "@loraspec/engine/setup/trainer-install.js";

const probe = (seen: object) => async () => `${JSON.stringify(seen)}\n`;
const base = { trainer: "kohya" as const, venvDir: "/opt/kohya/.venv", gpus: 1 };

describe("checkTrainerDevice", () => {
  it("passes when torch sees enough CUDA devices", async () => {
    await expect(checkTrainerDevice({ ...base, gpus: 2, probe: probe({ cuda: true, count: 2 }) })).resolves.toBeUndefined();
  });

  it.each([
    [{ cuda: false, count: 0, torch: "2.6.0+cpu" }, 1, "E_NOT_SUPPORTED", "hardware.gpu", /needs a CUDA GPU, but its torch 2\.6\.0\+cpu/],
    [{ cuda: true, count: 1 }, 2, "E_NOT_SUPPORTED", "hardware.gpus", /hardware\.gpus is 2 but kohya's torch sees 1/],
  ])("refuses %o for %i GPU(s) with a coded error naming the field", async (seen, gpus, code, field, message) => {
    await expect(checkTrainerDevice({ ...base, gpus, probe: probe(seen) })).rejects.toMatchObject({ code, field, message: expect.stringMatching(message) });
  });

  it("is skipped when the contract asks for the CPU", async () => {
    await expect(checkTrainerDevice({ ...base, gpu: "CPU", probe: probe({ cuda: false, count: 0 }) })).resolves.toBeUndefined();
  });

  it("says so when the venv's torch cannot be imported", async () => {
    const broken = async () => {
      throw new Error("ModuleNotFoundError: No module named 'torch'");
    };
    await expect(checkTrainerDevice({ ...base, probe: broken })).rejects.toMatchObject({ code: "E_TRAINER_FAILED", message: expect.stringContaining("No module named 'torch'") });
  });
});

describe("trainerPaths", () => {
  it("gives kohya runs a tokenizer cache beside the install (sd-scripts --tokenizer_cache_dir), ai-toolkit none", () => {
    expect(trainerPaths({ trainer: "kohya", cacheDir: "/c", env: {} })).toEqual({ trainerDir: "/c/kohya", venvDir: "/c/kohya/.venv", tokenizerCacheDir: "/c/kohya/tokenizers" });
    expect(trainerPaths({ trainer: "ai-toolkit", cacheDir: "/c", env: {} })).toEqual({ trainerDir: "/c/ai-toolkit", venvDir: "/c/ai-toolkit/.venv" });
  });
});
