import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildLora, REPO, tempDir } from "./helpers.js";

const cli = (args: string[]) => spawnSync(process.execPath, [join(REPO, "bin/loraspec.mjs"), ...args], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });

// A diffusers FLUX.1 file counts three ways: its own modules (split q/k/v), FLUX.1's native fused
// modules, and diffusers modules of the blocks. Each count says which it is (a tester read "12 modules"
// beside "5/314 modules" as a contradiction).
describe("inspect names the unit of each module count", () => {
  it("a diffusers FLUX.1 file: file modules, native (fused) modules, diffusers modules", async () => {
    const dir = await tempDir();
    const k = join(dir, "k.safetensors");
    await buildLora({ path: k, arch: "flux1", format: "kohya", pick: (m) => m.native === "double_blocks.0.img_attn.qkv" || m.native === "single_blocks.0.linear1", rank: 2, alpha: () => 1 });
    const d = join(dir, "d.safetensors");
    expect(cli(["convert", k, "--to", "diffusers", "-o", d]).status).toBe(0);
    const report = JSON.parse(cli(["inspect", d, "--json"]).stdout);
    const human = cli(["inspect", d]).stdout;
    const fileModules = report.modules.length;
    const native = report.coverage.find((c: { component: string }) => c.component === "transformer");
    expect(fileModules).toBeGreaterThan(native.touched); // q, k, v (+ mlp) place into one fused module each
    expect(human).toMatch(new RegExp(`^modules\\s+${fileModules}\\s`, "m"));
    expect(human).toContain(`transformer ${native.touched}/${native.total} native modules (FLUX.1's own names)`);
    expect(human).toMatch(new RegExp(`^targets\\s+custom: ${report.targets.covered}/${report.targets.blockModules} diffusers modules of the transformer blocks`, "m"));
  });
});
