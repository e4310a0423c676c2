import { spawnSync } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** `loraspec plan`'s text shows the plan's training shapes (plan.buckets) and who picks them, per trainer. */
const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");

function plan(args: string[]) {
  const r = spawnSync(process.execPath, [bin, "plan", ...args], { cwd: root, encoding: "utf8", env: { ...process.env, NO_COLOR: "1", FAL_KEY: "" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const row = (stdout: string) => /^buckets\s+(.*)$/m.exec(stdout)?.[1];

let tmp: string;
/** The character example (FLUX.1 [dev], twenty 1024 px images) with its trainer, aspect and resolution set. */
async function variant(name: string, trainer: string, aspect: string, resolution?: number): Promise<string> {
  const dir = join(tmp, name);
  await cp(join(root, "examples", "character"), dir, { recursive: true });
  const yaml = (await readFile(join(dir, "lora.yaml"), "utf8"))
    .replace(/name: ai-toolkit/, `name: ${trainer}`)
    .replace(/aspect: square/, `aspect: ${aspect}${resolution ? `\n  resolution: ${resolution}` : ""}`);
  await writeFile(join(dir, "lora.yaml"), yaml);
  return join(dir, "lora.yaml");
}
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-plan-buckets-"));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe("loraspec plan shows the training shapes", () => {
  it.each([
    ["square crops", "ai-toolkit", "square", undefined, "1024x1024 (square crops)"],
    ["ai-toolkit, scanned 1024 px images", "ai-toolkit", "buckets", undefined, "1024x1024 (ai-toolkit picks per image: the largest area <= 1024² on its divisibility, a smaller image at its own size; dataset.buckets is not used)"],
    ["ai-toolkit at 1000 (FLUX.1: 32 px sides)", "ai-toolkit", "buckets", 1000, "992x992 (ai-toolkit picks per image: the largest area <= 1000² on its divisibility, a smaller image at its own size; dataset.buckets is not used)"],
    ["Kohya's set", "kohya", "buckets", undefined, "25 shapes, 256x1024 .. 1024x256 (core's set from dataset.buckets; kohya: each image in the bucket nearest its aspect)"],
  ] as const)("%s", async (name, trainer, aspect, resolution, expected) => {
    const file = await variant(name.replace(/\W+/g, "-"), trainer, aspect, resolution);
    const text = plan([file]);
    expect(text.code, text.stderr).toBe(0);
    expect(row(text.stdout)).toBe(expected);
    // The same shapes as --json's plan.buckets.
    const { plan: json } = JSON.parse(plan(["--json", file]).stdout) as { plan: { buckets: { buckets: Array<{ width: number; height: number }>; picker: string } } };
    expect(json.buckets.picker).toBe(trainer === "ai-toolkit" && aspect === "buckets" ? "ai-toolkit" : "set");
    if (json.buckets.buckets.length <= 4) expect(row(text.stdout)).toContain(json.buckets.buckets.map((b) => `${b.width}x${b.height}`).join(", "));
    else expect(row(text.stdout)).toContain(`${json.buckets.buckets.length} shapes`);
  });
});
