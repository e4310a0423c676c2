import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents, type LoraspecEvent } from "@loraspec/core/events.js";
import { prepareDataset, type PrepSummary } from "@loraspec/engine/dataset/prepare-dataset.js";
import { scanDataset, type DatasetScan } from "@loraspec/engine/dataset/scan-dataset.js";
import { readPrepManifest } from "@loraspec/engine/dataset/prep-manifest.js";
import { decodeCaption, orphanCaptionHints } from "@loraspec/engine/dataset/caption-sidecar.js";
import { datasetFindings, unpreparedFindings } from "@loraspec/engine/dataset/dataset-findings.js";
import { fixCaptions } from "@loraspec/engine/caption/fix-captions.js";
import { photoLike, photoLikeRaw, pngHeaderOnly } from "./make-images.js";

// The odd files real downloaded datasets hold, labelled: what check's scan and prep must both do
// with each (kept, or left out with a stable code), and which caption each kept image trains with.
const KEPT = "kept";
const LABELS: Record<string, string> = {
  "good.jpg": KEPT,
  "IMG_01.JPG": KEPT, // upper-case extensions
  "IMG_02.PNG": KEPT,
  "IMG_03.JPEG": KEPT,
  "IMG_04.WebP": KEPT,
  "dbl.jpg": KEPT, // its caption is dbl.jpg.txt: an orphan, not its caption
  "rot6.jpg": KEPT, // EXIF orientation 6 and 8: used upright
  "rot8.jpg": KEPT,
  "cmyk.jpg": KEPT,
  "grey16.png": KEPT,
  "palette-alpha.png": KEPT,
  "grey.jpg": KEPT,
  "anim.gif": KEPT, // animated: the first frame
  "anim.webp": KEPT,
  "latin.jpg": KEPT, // kept; its Latin-1 caption is not
  "bom.jpg": KEPT,
  "crlf.jpg": KEPT,
  "sub/nested.jpg": KEPT, // sub-folders are read (prep flattens the name)
  "truncated.jpg": "truncated",
  "zero.png": "unreadable",
  "bomb.png": "too-large",
  "tiny.png": "too-small",
  "link.jpg": "symlink", // points outside the dataset
  "loop.jpg": "symlink", // points at itself
};
// Kept image -> the caption it trains with (null: none), the same in check's scan and in prep's folder.
const CAPTIONS: Record<string, string | null> = {
  "good.jpg": "txcl, good",
  "IMG_01.JPG": "txcl, upper-case caption",
  "bom.jpg": "txcl, bom caption",
  "crlf.jpg": "txcl, line one\r\nline two",
  "latin.jpg": null,
  "dbl.jpg": null,
  "IMG_02.PNG": null,
};

let tmp: string;
let ds: string;
let before: Map<string, string>;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-odd-"));
  ds = join(tmp, "dataset");
  await mkdir(join(ds, "sub"), { recursive: true });
  const w = (name: string, data: Buffer | string) => writeFile(join(ds, name), data);
  let seed = 100;
  const photo = (width = 300, height = 280) => photoLike(width, height, seed++);
  await w("good.jpg", await photo().jpeg().toBuffer());
  await w("good.txt", "txcl, good\n");
  await w("IMG_01.JPG", await photo().jpeg().toBuffer());
  await w("IMG_01.TXT", "txcl, upper-case caption\n");
  await w("IMG_02.PNG", await photo().png().toBuffer());
  await w("IMG_03.JPEG", await photo().jpeg().toBuffer());
  await w("IMG_04.WebP", await photo().webp().toBuffer());
  await w("dbl.jpg", await photo().jpeg().toBuffer());
  await w("dbl.jpg.txt", "txcl, double extension\n");
  // macOS and Windows junk: AppleDouble (not an image), Finder and Explorer files, a hidden image.
  await w("._good.jpg", Buffer.concat([Buffer.from([0, 5, 22, 7, 0, 2, 0, 0]), Buffer.from("Mac OS X        "), Buffer.alloc(200)]));
  await w(".DS_Store", Buffer.concat([Buffer.from([0, 0, 0, 1]), Buffer.from("Bud1"), Buffer.alloc(200)]));
  await w("Thumbs.db", Buffer.concat([Buffer.from([0xd0, 0xcf, 0x11, 0xe0]), Buffer.alloc(200)]));
  await w(".hidden.png", await photo().png().toBuffer());
  // A killed prep's leftover staging folder (a prepared folder kept inside the dataset): neither an image nor a hidden file of the user's.
  await mkdir(join(ds, "sub", ".prep-staging"));
  await w("sub/.prep-staging/good.png", await photo().png().toBuffer());
  // Stored 320x300 with the top half red, bottom blue; upright it is 300x320 with red on one side.
  const halves = sharp({ create: { width: 320, height: 300, channels: 3, background: "#0000ff" } }).composite([
    { input: { create: { width: 320, height: 150, channels: 3, background: "#ff0000" } }, left: 0, top: 0 },
  ]);
  const halvesJpeg = await halves.jpeg().toBuffer();
  await w("rot6.jpg", await sharp(halvesJpeg).withMetadata({ orientation: 6 }).jpeg().toBuffer());
  await w("rot8.jpg", await sharp(halvesJpeg).withMetadata({ orientation: 8 }).jpeg().toBuffer());
  await w("cmyk.jpg", await photo().toColourspace("cmyk").jpeg().toBuffer());
  await w("grey16.png", await photo().toColourspace("grey16").png().toBuffer());
  await w("palette-alpha.png", await photo().ensureAlpha(0.5).png({ palette: true }).toBuffer());
  await w("grey.jpg", await photo().toColourspace("b-w").jpeg().toBuffer());
  const frames = Buffer.concat([photoLikeRaw(300, 280, seed++), photoLikeRaw(300, 280, seed++)]);
  const animated = () => sharp(frames, { raw: { width: 300, height: 560, channels: 3, pageHeight: 280 } });
  await w("anim.gif", await animated().gif().toBuffer());
  // A different first frame, so the two animations are not duplicates of each other.
  const frames2 = Buffer.concat([photoLikeRaw(300, 280, seed++), photoLikeRaw(300, 280, seed++)]);
  await w("anim.webp", await sharp(frames2, { raw: { width: 300, height: 560, channels: 3, pageHeight: 280 } }).webp().toBuffer());
  await w("latin.jpg", await photo().jpeg().toBuffer());
  await w("latin.txt", Buffer.from("txcl, caf\xe9 cr\xe8me\n", "latin1"));
  await w("bom.jpg", await photo().jpeg().toBuffer());
  await w("bom.txt", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("txcl, bom caption\r\n")]));
  await w("crlf.jpg", await photo().jpeg().toBuffer());
  await w("crlf.txt", "txcl, line one\r\nline two\r\n");
  await w("sub/nested.jpg", await photo().jpeg().toBuffer());
  // Below the 256 px resolution, so its header alone earns an "upscaled" warning before the decode fails.
  await w("truncated.jpg", (await photo(250, 240).jpeg().toBuffer()).subarray(0, 2500));
  await w("zero.png", Buffer.alloc(0));
  await w("bomb.png", pngHeaderOnly(30000, 30000));
  await w("tiny.png", await photoLike(32, 32, seed++).png().toBuffer());
  await writeFile(join(tmp, "outside.jpg"), await photo().jpeg().toBuffer());
  await symlink(join(tmp, "outside.jpg"), join(ds, "link.jpg"));
  await symlink("loop.jpg", join(ds, "loop.jpg"));
  await symlink("loopdir", join(ds, "loopdir"));
  before = await hashes(ds);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function hashes(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(relative(dir, path), createHash("sha256").update(await readFile(path)).digest("hex"));
  }
  return out;
}

const labelsOf = (kept: string[], skipped: Array<{ file: string; code: string }>) =>
  Object.fromEntries([...kept.map((k) => [k, KEPT]), ...skipped.map((s) => [s.file, s.code])].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)));
const sorted = (o: Record<string, string>) => Object.fromEntries(Object.entries(o).sort((a, b) => (a[0] < b[0] ? -1 : 1)));

describe("odd files: check's scan and prep agree, file by file", () => {
  let scan: DatasetScan;
  let summary: PrepSummary;
  let prepEvents: LoraspecEvent[];
  beforeAll(async () => {
    scan = await scanDataset({ dir: ds, resolution: 256 });
    const events = await collectEvents(prepareDataset({ datasetDir: ds, outDir: join(tmp, "prepared"), resolution: 256, concurrency: 2 }));
    prepEvents = events;
    const done = events.find((e) => e.type === "done");
    summary = (done?.type === "done" ? done.result : undefined) as unknown as PrepSummary;
  });

  it("check's scan labels every file as the table does", () => {
    expect(labelsOf(scan.images.map((i) => i.file), scan.skipped)).toEqual(sorted(LABELS));
  });

  it("prep labels every file the same way, and what it keeps is in its folder", async () => {
    const manifest = (await readPrepManifest({ path: summary.manifest }))!;
    const kept = manifest.entries.filter((e) => e.status === "prepared");
    expect(labelsOf(kept.map((e) => e.source), summary.skipped.map((s) => ({ file: s.source, code: s.code })))).toEqual(sorted(LABELS));
    const files = new Set(await readdir(summary.outDir));
    for (const entry of kept) expect(files.has(entry.output!)).toBe(true);
    // A file left out is listed once, under skipped, never also as used with a warning.
    const skipped = new Set(summary.skipped.map((s) => s.source));
    expect(summary.warnings.filter((w) => skipped.has(w.source))).toEqual([]);
    // Animations: the first frame, said in both.
    for (const file of ["anim.gif", "anim.webp"]) {
      expect(summary.warnings.filter((w) => w.source === file).map((w) => w.code), `prep: ${file}`).toContain("first-frame-only");
      expect(scan.warnings.filter((w) => w.file === file).map((w) => w.code), `check: ${file}`).toContain("first-frame-only");
    }
  });

  it("both pair the same captions: upper-case .TXT yes, img.jpg.txt no, BOM dropped, Latin-1 left out", async () => {
    const manifest = (await readPrepManifest({ path: summary.manifest }))!;
    for (const [image, want] of Object.entries(CAPTIONS)) {
      expect(scan.images.find((i) => i.file === image)?.caption, `check: ${image}`).toBe(want);
      const entry = manifest.entries.find((e) => e.source === image)!;
      const text = await readFile(join(summary.outDir, entry.caption!), "utf8").catch(() => null);
      expect(text === null ? null : text.trim(), `prep: ${image}`).toBe(want);
    }
    expect(scan.orphanCaptions).toEqual(["dbl.jpg.txt"]);
    expect(summary.orphanCaptions).toEqual(["dbl.jpg.txt"]);
    expect(scan.captionProblems.map((c) => [c.file, c.code])).toEqual([["latin.txt", "caption-not-utf8"]]);
    expect(summary.captionsMissing).toBe(scan.images.filter((i) => i.caption === null).length);
  });

  it("before prep, check warns that the trainer would also get every file prep leaves out (not symlinks: never handed on)", () => {
    const findings = unpreparedFindings(scan);
    const leftOut = Object.entries(LABELS).filter(([, label]) => label !== KEPT && label !== "symlink").map(([file]) => file);
    expect([...findings.flatMap((f) => f.files!)].sort()).toEqual(leftOut.sort());
    expect(unpreparedFindings({ ...scan, skipped: scan.skipped.filter((s) => s.code === "symlink"), duplicates: [] })).toEqual([]);
    // The built-in trainer lists the folder itself: a nested image and the animations are counted but never read.
    const builtin = unpreparedFindings(scan, "dataset.path", { extensions: [".png", ".jpg", ".jpeg", ".webp"], subfolders: false });
    expect(builtin.flatMap((f) => f.files!).filter((f) => !leftOut.includes(f)).sort()).toEqual(["anim.gif", "sub/nested.jpg"]);
  });

  it("before prep, a file the trainer reads but cannot decode is an error (the run would stop at it); the rest stay a warning", () => {
    // Which skips stop the run, by code: the trainer opens every image it lists with PIL.
    const stops: Record<string, boolean> = { truncated: true, unreadable: true, "not-an-image": true, "too-large": false, "too-small": false, symlink: false };
    const byRule = (findings: ReturnType<typeof unpreparedFindings>, rule: string) => findings.find((f) => f.rule === rule)?.files ?? [];
    for (const reader of [undefined, { extensions: [".png", ".jpg", ".jpeg", ".webp"], subfolders: false }]) {
      const findings = unpreparedFindings(scan, "dataset.path", reader);
      const errors = byRule(findings, "dataset-not-prepared-unreadable");
      for (const s of scan.skipped) expect(errors.includes(s.file), `${s.file} (${s.code})`).toBe(stops[s.code] ?? false);
      expect(findings.find((f) => f.rule === "dataset-not-prepared-unreadable")).toMatchObject({ severity: "error", field: "dataset.path" });
      expect(byRule(findings, "dataset-not-prepared")).toEqual(expect.arrayContaining(["bomb.png", "tiny.png"]));
    }
    // A format the built-in trainer never opens cannot stop it.
    const gifOnly = { ...scan, skipped: [{ file: "broken.gif", code: "truncated", message: "m" }], duplicates: [] } as DatasetScan;
    expect(unpreparedFindings(gifOnly, "dataset.path", { extensions: [".png"], subfolders: false }).map((f) => f.rule)).toEqual(["dataset-not-prepared"]);
  });

  it("both name the hidden files they leave out (macOS ._ twin, .DS_Store, a hidden image): check as an info finding, prep in its report", async () => {
    const hidden = [".DS_Store", "._good.jpg", ".hidden.png"];
    expect(scan.hidden).toEqual(hidden);
    expect(summary.hidden).toEqual(hidden);
    expect(datasetFindings(scan).find((f) => f.rule === "dataset-hidden-files")).toMatchObject({
      severity: "info",
      message: 'prep and the trainers leave out 3 hidden file(s) (names starting with "."): .DS_Store, ._good.jpg, .hidden.png',
      files: hidden,
    });
    expect(prepEvents).toContainEqual({ type: "warning", code: "hidden-file", message: 'left out 3 hidden file(s) (names starting with "."; no trainer reads them): .DS_Store, ._good.jpg, .hidden.png' });
  });

  it("both say which image dbl.jpg.txt was named after and the rename that pairs it; nothing is renamed", async () => {
    const hint = "named after dbl.jpg with its extension: rename dbl.jpg.txt -> dbl.txt";
    expect(scan.orphanHints).toEqual({ "dbl.jpg.txt": hint });
    expect(summary.orphanHints).toEqual({ "dbl.jpg.txt": hint });
    expect(datasetFindings(scan).find((f) => f.rule === "dataset-orphan-captions")?.message).toBe(`1 caption file(s) have no image beside them: dbl.jpg.txt (${hint})`);
    expect(prepEvents).toContainEqual({ type: "warning", code: "orphan-caption", message: `1 caption file(s) with no image beside them: dbl.jpg.txt (${hint})` });
    expect(await readdir(ds)).toEqual(expect.arrayContaining(["dbl.jpg", "dbl.jpg.txt"]));
    expect(await readdir(ds)).not.toContain("dbl.txt");
  });

  it("EXIF-rotated JPEGs are measured and prepared upright", async () => {
    const manifest = (await readPrepManifest({ path: summary.manifest }))!;
    for (const [file, redSide] of [["rot6.jpg", "right"], ["rot8.jpg", "left"]] as const) {
      expect(scan.images.find((i) => i.file === file)).toMatchObject({ width: 300, height: 320 });
      const entry = manifest.entries.find((e) => e.source === file)!;
      const { data, info } = await sharp(join(summary.outDir, entry.output!)).raw().toBuffer({ resolveWithObject: true });
      const at = (x: number) => data[(Math.floor(info.height / 2) * info.width + x) * info.channels]!;
      const [left, right] = [at(10), at(info.width - 10)];
      expect(redSide === "right" ? right > 200 && left < 50 : left > 200 && right < 50, `${file}: left red ${left}, right red ${right}`).toBe(true);
    }
  });

  it("leaves every original untouched, and `caption --fix` does not rewrite a Latin-1 caption", async () => {
    expect(await hashes(ds)).toEqual(before);
    // --fix edits the folder it is given (here the dataset itself), but never a caption it cannot read faithfully.
    const events = await collectEvents(fixCaptions({ dir: ds, trigger: "newtrigger", style: "natural" }));
    const done = events.find((e) => e.type === "done");
    expect(done?.type === "done" && (done.result as { unreadable: string[] }).unreadable).toEqual(["latin.txt"]);
    expect(events.some((e) => e.type === "warning" && e.code === "caption-not-utf8")).toBe(true);
    expect((await hashes(ds)).get("latin.txt")).toBe(before.get("latin.txt"));
  });
});

describe("orphanCaptionHints", () => {
  it.each<[string, string, string[], Record<string, string>, string | undefined]>([
    ["photo.jpg.txt beside photo.jpg", "photo.jpg.txt", ["photo.jpg"], {}, "named after photo.jpg with its extension: rename photo.jpg.txt -> photo.txt"],
    ["in a sub-folder", "a/photo.png.txt", ["a/photo.png"], {}, "named after a/photo.png with its extension: rename a/photo.png.txt -> a/photo.txt"],
    ["the image extension's case differs", "IMG_01.jpg.txt", ["IMG_01.JPG"], {}, "named after IMG_01.JPG with its extension: rename IMG_01.jpg.txt -> IMG_01.txt"],
    ["the image already has its caption", "photo.jpg.txt", ["photo.jpg"], { "photo.jpg": "photo.txt" }, "named after photo.jpg with its extension; photo.jpg already has its caption photo.txt: keep one of the two"],
    ["no such image", "photo.jpg.txt", ["other.jpg"], {}, undefined],
    ["a plain orphan", "notes.txt", ["photo.jpg"], {}, undefined],
    ["another folder's image", "b/photo.jpg.txt", ["a/photo.jpg"], {}, undefined],
  ])("%s", (_, orphan, images, sidecars, want) => {
    expect(orphanCaptionHints([orphan], images, new Map(Object.entries(sidecars)))[orphan]).toBe(want);
  });
});

describe("decodeCaption", () => {
  it.each([
    ["utf-8", Buffer.from("txcl, café"), "txcl, café"],
    ["a BOM", Buffer.from("\ufefftxcl, x", "utf8"), "txcl, x"],
    ["Latin-1", Buffer.from("txcl, caf\xe9", "latin1"), undefined],
  ])("%s", (_, bytes, text) => {
    const read = decodeCaption(bytes);
    expect(read.text).toBe(text);
    if (text === undefined) expect(read.problem?.message).toMatch(/byte 0xe9 at offset 9/);
  });
});
