import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { convertLora } from "@loraspec/engine/lora/convert-lora.js";
import { mergeLora } from "@loraspec/engine/lora/merge-lora.js";
import { buildLora, REPO, tempDir } from "./helpers.js";

/**
 * A file that exists where convert or merge would write is the user's: it is never replaced
 * without --force / `overwrite` (E_FILE_EXISTS, the file byte-identical), as export-script and init
 * refuse. Before, a second `merge` into the default merged.safetensors, a convert beside a file of
 * its default name, or the web page's output box pointed at a run's LoRA replaced it silently.
 */

const cli = (args: string[], cwd?: string) => spawnSync(process.execPath, [join(REPO, "bin/loraspec.mjs"), ...args], { cwd, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
const SENTINEL = "not a LoRA: the user's own file";

async function fixtures() {
  const dir = await tempDir();
  const a = join(dir, "a.safetensors"), b = join(dir, "b.safetensors");
  const pick = (m: { native: string }) => m.native.startsWith("double_blocks.0.img_attn");
  await buildLora({ path: a, arch: "flux1", format: "kohya", pick, rank: 2, alpha: () => 1 });
  await buildLora({ path: b, arch: "flux1", format: "diffusers", pick, rank: 2, seed: 2 });
  return { dir, a, b };
}

const LIBRARY = [
  ...(["diffusers", "kohya", "comfy"] as const).map((to) => ({ name: `convertLora --to ${to}`, run: (a: string, _b: string, output: string, overwrite?: boolean) => convertLora({ input: a, output, to, overwrite }) })),
  ...(["cat", "linear"] as const).map((method) => ({
    name: `mergeLora ${method}`,
    run: (a: string, b: string, output: string, overwrite?: boolean) => mergeLora({ inputs: [{ path: a, weight: 0.5 }, { path: b, weight: 0.3 }], output, method, overwrite }),
  })),
];

describe("convert and merge never replace an existing output unless asked", () => {
  it.each(LIBRARY)("$name", async ({ name, run }) => {
    const { dir, a, b } = await fixtures();
    const out = join(dir, "out.safetensors");
    await writeFile(out, SENTINEL);
    const error = await collectEvents(run(a, b, out)).catch((e: unknown) => e);
    expect(isLoraspecError(error) && [error.code, error.file], name).toEqual(["E_FILE_EXISTS", out]);
    expect(await readFile(out, "utf8")).toBe(SENTINEL);
    if (name.endsWith("linear")) return; // the worker's merge: the refusal above is the point; replacing is covered by the in-process ones
    await collectEvents(run(a, b, out, true));
    expect((await readFile(out)).length).toBeGreaterThan(SENTINEL.length);
  });

  it.each([
    { name: "convert, default output beside the input", args: (a: string) => ["convert", a, "--to", "diffusers"], out: (dir: string) => join(dir, "a.diffusers.safetensors") },
    { name: "convert -o", args: (a: string, _b: string, dir: string) => ["convert", a, "--to", "comfy", "-o", join(dir, "o.safetensors")], out: (dir: string) => join(dir, "o.safetensors") },
    { name: "merge, default merged.safetensors", args: (a: string, b: string) => ["merge", `${a}:0.5`, `${b}:0.3`], out: (dir: string) => join(dir, "merged.safetensors") },
    { name: "merge -o", args: (a: string, b: string, dir: string) => ["merge", `${a}:0.5`, `${b}:0.3`, "-o", join(dir, "m.safetensors")], out: (dir: string) => join(dir, "m.safetensors") },
  ])("CLI: $name", async ({ args, out }) => {
    const { dir, a, b } = await fixtures();
    await writeFile(out(dir), SENTINEL);
    const refused = cli(args(a, b, dir), dir);
    expect([refused.status, refused.stderr]).toEqual([2, expect.stringContaining("E_FILE_EXISTS")]);
    expect(refused.stderr).toContain("--force");
    expect(await readFile(out(dir), "utf8")).toBe(SENTINEL);
    const forced = cli([...args(a, b, dir), "--force"], dir);
    expect(forced.status, forced.stderr).toBe(0);
    expect((await readFile(out(dir))).length).toBeGreaterThan(SENTINEL.length);
    // --force never reaches an input: that stays E_USAGE.
    const self = cli(["convert", a, "--to", "kohya", "-o", a, "--force"], dir);
    expect([self.status, self.stderr]).toEqual([2, expect.stringContaining("E_USAGE")]);
  });

  it.each(LIBRARY.filter((x) => !x.name.endsWith("linear")))("$name: a broken input reports itself first, whatever the output folder holds", async ({ run }) => {
    const { dir, b } = await fixtures();
    const broken = join(dir, "broken.safetensors");
    await writeFile(broken, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]));
    const out = join(dir, "out.safetensors");
    await writeFile(out, SENTINEL);
    const error = await collectEvents(run(broken, b, out)).catch((e: unknown) => e);
    expect(isLoraspecError(error) && error.code).toBe("E_SAFETENSORS_INVALID");
    expect(await readFile(out, "utf8")).toBe(SENTINEL);
  });
});

