import { mkdir, mkdtemp, readFile, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PINS_FILE } from "@loraspec/engine/dataset/dataset-pins.js";
import { createApp } from "@loraspec/engine/server/create-app.js";
import { defaultDeps } from "@loraspec/engine/server/default-deps.js";
import { photoLike } from "../dataset/make-images.js";

/** POST /api/dataset/pins over the real scan: the page's choice is stored and the listing follows it. */
const TOKEN = "p".repeat(32);
const auth = { Host: "127.0.0.1:4747", Authorization: `Bearer ${TOKEN}` };
const json = { ...auth, "Content-Type": "application/json" };
let project: string;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), "loraspec-pins-api-"));
  const ds = join(project, "dataset");
  await mkdir(ds);
  await writeFile(join(ds, "a.jpg"), await photoLike(320, 240, 1).jpeg({ quality: 90 }).toBuffer());
  await writeFile(join(ds, "a-small.jpg"), await photoLike(320, 240, 1).resize(288, 216).jpeg({ quality: 70 }).toBuffer());
  await writeFile(join(ds, "b.png"), await photoLike(300, 300, 2).png().toBuffer());
  await writeFile(
    join(project, "lora.yaml"),
    "version: 1\nname: pins\nbase: { model: sdxl }\ntrainer: { name: diffusers }\ntarget: character\ndataset: { path: ./dataset, resolution: 128 }\ntrigger: { word: zxqv }\n",
  );
  app = createApp({ projectDir: project, token: TOKEN, ...defaultDeps() });
});

afterAll(async () => {
  await rm(project, { recursive: true, force: true });
});

const clusters = async () => {
  const res = await app.request("/api/dataset", { headers: auth });
  expect(res.status).toBe(200);
  return ((await res.json()).summary.duplicates as Array<{ keep: string; drop: string[] }>).map((c) => [c.keep, ...c.drop]);
};
const pin = (body: unknown, headers: Record<string, string> = json) => app.request("/api/dataset/pins", { method: "POST", headers, body: JSON.stringify(body) });

describe("POST /api/dataset/pins", () => {
  it("stores 'keep this one' and 'keep both', and the listing (prep's scan) follows each", async () => {
    expect(await clusters()).toEqual([["a.jpg", "a-small.jpg"]]);
    const keep = await pin({ keep: "a-small.jpg", cluster: ["a.jpg", "a-small.jpg"] });
    expect(keep.status).toBe(200);
    expect((await keep.json()).pins).toEqual({ keep: ["a-small.jpg"], distinct: [] });
    expect(await clusters()).toEqual([["a-small.jpg", "a.jpg"]]);
    const both = await pin({ distinct: ["a-small.jpg", "a.jpg"] });
    expect(both.status).toBe(200);
    expect(await clusters()).toEqual([]);
    expect(JSON.parse(await readFile(join(project, PINS_FILE), "utf8"))).toEqual({
      version: 2,
      datasets: [{ dataset: expect.stringMatching(/\/dataset$/), datasetRelative: "dataset", keep: ["a-small.jpg"], distinct: [["a-small.jpg", "a.jpg"]] }],
    });
    expect((await (await app.request("/api/dataset", { headers: auth })).json()).pins).toEqual({ keep: ["a-small.jpg"], distinct: [["a-small.jpg", "a.jpg"]] });
  });

  it("{reset: true} forgets every choice and the cluster comes back as dedupe forms it", async () => {
    const saved = await readFile(join(project, PINS_FILE), "utf8");
    try {
      expect((await pin({ reset: true })).status).toBe(200);
      expect(await clusters()).toEqual([["a.jpg", "a-small.jpg"]]);
    } finally {
      await writeFile(join(project, PINS_FILE), saved);
    }
  });

  it.each([
    ["an image not in the dataset", { keep: "zzz.jpg", cluster: [] }, 404, "E_FILE_NOT_FOUND"],
    ["a path out of the dataset", { distinct: ["a.jpg", "../lora.yaml"] }, 404, "E_FILE_NOT_FOUND"],
    ["a pair of one image", { distinct: ["a.jpg", "a.jpg"] }, 400, "E_USAGE"],
    ["neither keep nor distinct", { drop: "a.jpg" }, 400, "E_USAGE"],
    ["a cluster that is not a list", { keep: "a.jpg", cluster: "b.png" }, 400, "E_USAGE"],
  ])("refuses %s with its code and writes nothing", async (_name, body, status, code) => {
    const before = await readFile(join(project, PINS_FILE), "utf8");
    const res = await pin(body);
    expect(res.status).toBe(status);
    expect((await res.json()).error.code).toBe(code);
    expect(await readFile(join(project, PINS_FILE), "utf8")).toBe(before);
  });

  it("refuses a write from another origin (403), as every write route", async () => {
    const res = await pin({ distinct: ["a.jpg", "b.png"] }, { ...json, Origin: "https://evil.example" });
    expect(res.status).toBe(403);
    expect((await app.request("/api/dataset/pins", { method: "POST", headers: { Host: auth.Host, "Content-Type": "application/json" }, body: "{}" })).status).toBe(401);
  });

  it("a pins file that is a symlink out of the project is refused (403), and the file it points at is untouched", async () => {
    const outside = await mkdtemp(join(tmpdir(), "loraspec-pins-outside-"));
    const saved = await readFile(join(project, PINS_FILE), "utf8");
    try {
      await writeFile(join(outside, "target.json"), "precious");
      await unlink(join(project, PINS_FILE));
      await symlink(join(outside, "target.json"), join(project, PINS_FILE));
      const res = await pin({ distinct: ["a.jpg", "b.png"] });
      expect(res.status).toBe(403);
      expect(await readFile(join(outside, "target.json"), "utf8")).toBe("precious");
    } finally {
      await unlink(join(project, PINS_FILE)).catch(() => undefined);
      await writeFile(join(project, PINS_FILE), saved);
      await rm(outside, { recursive: true, force: true });
    }
  });

  it("a hostile pins file on disk: a new choice is a coded 422 and never overwrites it; the listing goes on with one finding; 'forget' replaces it", async () => {
    const hostile = JSON.stringify({ version: 1, keep: ["../../../etc/passwd"] });
    await writeFile(join(project, PINS_FILE), hostile);
    const res = await pin({ distinct: ["a.jpg", "b.png"] });
    expect(res.status).toBe(422);
    expect((await res.json()).error).toMatchObject({ code: "E_DATASET_PINS_INVALID", field: "keep.0" });
    expect(await readFile(join(project, PINS_FILE), "utf8")).toBe(hostile);
    // As check and prep: the listing answers, without the pins, with the finding naming the file and the field.
    const listing = await app.request("/api/dataset", { headers: auth });
    expect(listing.status).toBe(200);
    const body = await listing.json();
    expect(body.pins).toEqual({ keep: [], distinct: [] });
    expect(body.pinsFinding).toMatchObject({ rule: "dataset-pins-invalid", severity: "warning", message: expect.stringMatching(/dataset-pins\.json: keep\.0/) });
    expect(body.summary.duplicates).toHaveLength(1);
    expect((await pin({ reset: true })).status).toBe(200);
    expect(JSON.parse(await readFile(join(project, PINS_FILE), "utf8"))).toEqual({ version: 2, datasets: [] });
    expect((await (await app.request("/api/dataset", { headers: auth })).json()).pinsFinding).toBeUndefined();
  });

  it("the project page's plan summary is the scan check makes: the near-duplicate copy is not counted, a 'keep both' pair is", async () => {
    await writeFile(join(project, PINS_FILE), JSON.stringify({ version: 1 }));
    const images = async () => ((await (await app.request("/api/dataset/summary", { headers: auth })).json()).summary.images as Array<{ file: string }>).map((i) => i.file).sort();
    expect(await images()).toEqual(["a.jpg", "b.png"]);
    expect((await pin({ distinct: ["a.jpg", "a-small.jpg"] })).status).toBe(200);
    expect(await images()).toEqual(["a-small.jpg", "a.jpg", "b.png"]);
    const plan = await app.request("/api/plan", { method: "POST", headers: json, body: JSON.stringify({ yaml: await readFile(join(project, "lora.yaml"), "utf8") }) });
    expect((await plan.json()).plan.images.count).toBe(3);
  });
});
