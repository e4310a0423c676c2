import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initProject } from "@loraspec/engine/project/init-project.js";
import { photoLike } from "../dataset/make-images.js";

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-init-"));
  const ds = join(tmp, "dataset");
  await mkdir(ds);
  for (let i = 0; i < 15; i++) await photoLike(320, 320, 30 + i * 7).jpeg().toFile(join(ds, `p${i}.jpg`));
  await photoLike(320, 320, 30).jpeg().toFile(join(ds, "p0-copy.jpg")); // same pixels, same bytes
  await writeFile(join(ds, "broken.jpg"), "not an image");
  await writeFile(join(ds, "empty.png"), Buffer.alloc(0));
  await writeFile(join(ds, "notes.md"), "# notes");
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("initProject", () => {
  it("counts only the images prep will use in expected_images (not broken, empty or duplicate files)", async () => {
    // 320 px images: kept at 512 (upscaled), not at SDXL's native 1024 (init-then-check.spec.ts says what init does then).
    const r = await initProject({ choices: { base: "sdxl", target: "character", trigger: "txcl", resolution: 512 }, cwd: tmp });
    expect(r.yaml).toMatch(/expected_images: 15\b/);
  });
});
