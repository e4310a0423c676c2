import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { listDatasetFiles } from "@loraspec/engine/dataset/list-dataset-files.js";
import { scanDataset } from "@loraspec/engine/dataset/scan-dataset.js";
import { photoLike } from "./make-images.js";

// A file whose name is not UTF-8 (a Latin-1 "é" from an old archive): Node lists it with U+FFFD and the
// name opens nothing, so check said "unreadable: ENOENT: no such file or directory" of a file that is there.
const dir = mkdtempSync(join(tmpdir(), "loraspec-name-utf8-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.runIf(process.platform === "linux")("a file name that is not UTF-8", () => {
  it("is a skip that says so and what to do, not ENOENT; a real U+FFFD in a name is a file like any other", async () => {
    const png = await photoLike(96, 96, 4).png().toBuffer();
    writeFileSync(Buffer.concat([Buffer.from(`${dir}/caf`), Buffer.from([0xe9]), Buffer.from(".png")]), png);
    writeFileSync(join(dir, "real\uFFFDname.png"), png);
    writeFileSync(join(dir, "ok.png"), png);
    const files = await listDatasetFiles({ dir });
    expect(files.images).toEqual(["ok.png", "real\uFFFDname.png"]);
    expect(files.skipped).toEqual([{ path: "caf\uFFFD.png", code: "name-not-utf8", message: expect.stringMatching(/^its name is not UTF-8 .* rename it/) }]);
    const scan = await scanDataset({ dir, resolution: 64 });
    expect(JSON.stringify(scan)).not.toContain("ENOENT");
  });
});
