import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildLora, REPO, tempDir } from "./helpers.js";

const cli = (args: string[]) => spawnSync(process.execPath, [join(REPO, "bin/loraspec.mjs"), ...args], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });

describe("loraspec inspect / convert / merge (CLI)", () => {
  it("inspect --json, convert, cat merge, and coded exit codes", async () => {
    const dir = await tempDir();
    const a = join(dir, "a.safetensors");
    await buildLora({ path: a, arch: "flux1", format: "kohya", pick: (m) => m.native.startsWith("double_blocks.0.") || m.native.startsWith("single_blocks.0."), rank: 2, alpha: () => 1 });
    const inspect = cli(["inspect", a, "--json"]);
    expect(inspect.status).toBe(0);
    const report = JSON.parse(inspect.stdout);
    expect([report.format, report.architecture.id, report.modules.length, report.unplaced]).toEqual(["kohya", "flux1", 13, []]);
    const human = cli(["inspect", a]);
    expect(human.stdout).toContain("FLUX.1");

    const d = join(dir, "d.safetensors");
    const conv = cli(["convert", a, "--to", "diffusers", "-o", d]);
    expect(conv.status).toBe(0);
    expect(JSON.parse(cli(["inspect", d, "--json"]).stdout).format).toBe("diffusers");

    const m = join(dir, "m.safetensors");
    const merge = cli(["merge", `${a}:0.5`, `${d}:0.5`, "--method", "cat", "-o", m]);
    expect(merge.status).toBe(0);
    expect(merge.stderr).not.toContain("warning");

    const bad = cli(["convert", a, "--to", "onnx"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("E_USAGE");
    const missing = cli(["inspect", join(dir, "nope.safetensors")]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("E_FILE_NOT_FOUND");
    expect(missing.stderr).not.toContain("    at ");
  });
});
