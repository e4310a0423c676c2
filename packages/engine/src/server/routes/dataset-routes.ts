import { mkdir, open } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { parse as parseYaml } from "yaml";
import { LoraspecError } from "@loraspec/core/errors.js";
import { PINS_FILE, type PinChoice } from "../../dataset/dataset-pins.js";
import { saveDatasetPinChoice } from "../../dataset/stored-pins.js";
import { atomicWrite } from "../../fs/atomic-write.js";
import { FILE_LIMITS } from "../../fs/file-limits.js";
import { checkUnchanged, requireBase } from "../guarded-write.js";
import type { AppContext } from "../app-context.js";
import { notSupported, readJson, requireString, tooLarge } from "../http-helpers.js";
import { IMAGE_UPLOAD_TYPES, SERVER_LIMITS } from "../limits.js";
import { captionFilesFor, contractBasics, listImages, readContractText } from "../project-files.js";
import { projectRelative, resolveInsideProject } from "../../fs/safe-path.js";
import { contractOnDisk, datasetListing, planScans } from "./dataset-scan.js";

/** The dataset: listing, thumbnails and crops, captions (by hand and by a model), uploads. Mounted at /api. */
export function datasetRoutes(ctx: AppContext) {
  return new Hono()
    // The page lints and plans from these, as check does (core plan/plan-inputs.ts): the dataset's scan and the reg folder's.
    .get("/dataset/summary", async (c) => {
      const scans = await planScans(ctx, await contractOnDisk(ctx), c.req.raw.signal);
      return c.json({ summary: scans.dataset ?? null, reg: scans.regDataset ?? null });
    })
    .get("/dataset", async (c) => c.json(await datasetListing(ctx)))
    .get("/dataset/thumb", (c) => webp(ctx, c, (img, px) => img.resize(px, px, { fit: "inside", withoutEnlargement: true })))
    .get("/dataset/crop", (c) => crop(ctx, c))
    .put("/captions", async (c) => c.json(await saveCaptions(ctx, c)))
    .post("/dataset/pins", async (c) => c.json(await savePins(ctx, c)))
    .post("/captions/auto", async (c) => c.json(await autoCaption(ctx, c)))
    .post("/dataset/upload", bodyLimit({ maxSize: SERVER_LIMITS.uploadBytes, onError: tooLarge(SERVER_LIMITS.uploadBytes) }), async (c) =>
      c.json(await upload(ctx, c)),
    );
}

/** The `path` query's image, confined twice: to the project (the dataset folder) and to the dataset. */
async function datasetImage(ctx: AppContext, c: Context) {
  return resolveInsideProject({ projectDir: await ctx.datasetDir(), path: requireString(c.req.query("path"), "path") });
}

/** A dataset image, decoded with the pixel limit, resized by `resize` to the thumbnail size, as WebP. */
async function webp(ctx: AppContext, c: Context, resize: (img: import("sharp").Sharp, px: number) => import("sharp").Sharp) {
  const full = await datasetImage(ctx, c);
  const sharp = (await import("sharp")).default;
  const out = await resize(sharp(full, { limitInputPixels: SERVER_LIMITS.maxInputPixels }).rotate(), SERVER_LIMITS.thumbnailPx)
    .webp({ quality: 80 })
    .toBuffer()
    .catch((error: Error) => {
      throw new LoraspecError("E_IMAGE_UNREADABLE", `Cannot decode ${c.req.query("path")}: ${error.message}`);
    });
  return c.body(new Uint8Array(out), 200, { "Content-Type": "image/webp", "Cache-Control": "private, max-age=60" });
}

/** GET /dataset/crop: the same square crop training will use (dataset.crop): centre, or sharp's attention strategy. */
async function crop(ctx: AppContext, c: Context) {
  const b = await ctx.basics();
  const mode = c.req.query("mode") === "attention" || (!c.req.query("mode") && b.crop === "attention") ? "attention" : "center";
  const sharp = (await import("sharp")).default;
  return webp(ctx, c, (img, px) => img.resize(px, px, { fit: "cover", position: mode === "attention" ? sharp.strategy.attention : "centre" }));
}

/** PUT /captions: captions edited by hand, every item checked before any is written. */
async function saveCaptions(ctx: AppContext, c: Context): Promise<{ written: string[] }> {
  const body = await readJson<{ items?: unknown }>(c);
  if (!Array.isArray(body.items) || body.items.length === 0) {
    throw new LoraspecError("E_USAGE", '"items" must be a non-empty list of {image, text}.', { field: "items" });
  }
  const { projectDir } = ctx;
  const b = await ctx.basics();
  const dir = await ctx.datasetDir();
  const images = await listImages(dir);
  const known = new Set(images);
  // The caption file the listing showed (IMG_01.TXT for IMG_01.JPG), else a new one with the contract's extension.
  const captionFiles = await captionFilesFor(dir, images, b.captionExtension);
  const writes: Array<{ file: string; text: string; captionFile: string }> = [];
  for (const item of body.items as Array<{ image?: unknown; text?: unknown; base?: unknown }>) {
    const image = requireString(item?.image, "items[].image");
    if (typeof item.text !== "string") throw new LoraspecError("E_USAGE", '"items[].text" must be a string.', { field: "items[].text" });
    if (Buffer.byteLength(item.text) > SERVER_LIMITS.captionBytes) {
      // The listing shows no caption over this size (caption-too-large): the page must not write one.
      throw new LoraspecError("E_USAGE", `The caption for "${image}" is over ${SERVER_LIMITS.captionBytes} bytes.`, { field: "items[].text" });
    }
    if (!known.has(image)) throw new LoraspecError("E_FILE_NOT_FOUND", `No image "${image}" in the dataset.`, { field: "items[].image" });
    const captionRel = captionFiles.get(image)!;
    const file = await ctx.inside(projectRelative(projectDir, join(dir, ...captionRel.split("/"))));
    // The caption as the page read it (null: none): one changed on disk since is refused, not overwritten.
    await checkUnchanged({ file, rel: projectRelative(projectDir, file), base: requireBase(item.base, "items[].base"), limit: FILE_LIMITS.caption, field: "items[].base", asShown: withoutBom });
    writes.push({ file, text: item.text.trim() + "\n", captionFile: captionRel });
  }
  // Validate everything first, then write: a bad item never leaves half the edits on disk.
  for (const w of writes) await atomicWrite(w.file, w.text);
  return { written: writes.map((w) => w.captionFile) };
}

/** POST /dataset/pins: the page's keep/drop choice on a duplicate cluster, stored where prep and check read it. */
async function savePins(ctx: AppContext, c: Context) {
  const choice = pinChoice(await readJson<Record<string, unknown>>(c));
  const datasetDir = await ctx.datasetDir();
  const known = new Set(await listImages(datasetDir));
  const named = choice.action === "keep" ? [choice.file, ...choice.cluster] : choice.action === "distinct" ? [...choice.files] : [];
  for (const file of named) {
    if (!known.has(file)) throw new LoraspecError("E_FILE_NOT_FOUND", `No image "${file}" in the dataset.`, { file, field: choice.action === "keep" ? "keep" : "distinct" });
  }
  const contractDir = dirname(ctx.contractFile);
  await ctx.inside(projectRelative(ctx.projectDir, join(contractDir, PINS_FILE))); // confined like every write
  // A new choice goes on top of this dataset's stored ones (a bad file is refused, never overwritten; "forget" replaces
  // a bad file); other datasets' pins in the file are kept as they are (stored-pins.ts).
  const pins = await saveDatasetPinChoice({ projectDir: contractDir, datasetDir, choice });
  return { pins };
}

/** POST /captions/auto: suggested captions for dataset images from the injected captioner; writes nothing. */
async function autoCaption(ctx: AppContext, c: Context) {
  const { params } = ctx;
  if (!params.autoCaption) throw notSupported("Auto-captioning");
  const body = await readJson<{ images?: unknown }>(c);
  if (!Array.isArray(body.images) || !body.images.every((x) => typeof x === "string")) {
    throw new LoraspecError("E_USAGE", '"images" must be a list of image paths.', { field: "images" });
  }
  const dir = await ctx.datasetDir();
  const known = new Set(await listImages(dir));
  for (const image of body.images as string[]) {
    if (!known.has(image)) throw new LoraspecError("E_FILE_NOT_FOUND", `No image "${image}" in the dataset.`);
  }
  const text = await readContractText(ctx.contractFile, ctx.contractRel);
  const b = contractBasics(text);
  const target = (parseYaml(text) as { target?: unknown } | null)?.target;
  return params.autoCaption({
    dir,
    images: body.images as string[],
    trigger: b.trigger,
    style: b.captionStyle,
    target: target === "style" || target === "product" ? target : "character",
    signal: c.req.raw.signal,
  });
}

/** POST /dataset/upload (size-limited by bodyLimit): multipart images, all checked before any is written. */
async function upload(ctx: AppContext, c: Context): Promise<{ added: string[] }> {
  const type = c.req.header("content-type") ?? "";
  if (!/^multipart\/form-data\b/i.test(type)) {
    throw new LoraspecError("E_UNSUPPORTED_MEDIA_TYPE", `Uploads are multipart/form-data, got "${type || "nothing"}".`);
  }
  const form = await c.req.formData();
  const files = form.getAll("file").filter((f): f is File => typeof f !== "string");
  if (files.length === 0) throw new LoraspecError("E_USAGE", 'No "file" field in the upload.', { field: "file" });
  const checked = await checkUploads(files);
  const dir = await ctx.datasetDir();
  await mkdir(dir, { recursive: true });
  const added: string[] = [];
  for (const { name, data } of checked) {
    const target = await ctx.inside(projectRelative(ctx.projectDir, join(dir, name)));
    await writeNewFile(target, name, data);
    added.push(name);
  }
  return { added };
}

/** Writes and syncs a file that must not exist yet (`wx`): an upload never replaces a user's file. */
async function writeNewFile(target: string, name: string, data: Uint8Array): Promise<void> {
  const handle = await open(target, "wx").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "EEXIST") throw new LoraspecError("E_FILE_EXISTS", `"${name}" already exists in the dataset.`, { file: name });
    throw error;
  });
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** `{keep, cluster}` (keep this one over the rest of its cluster), `{distinct: [a, b]}` (keep both) or `{reset: true}`. */
function pinChoice(body: Record<string, unknown>): PinChoice {
  if (body.reset === true) return { action: "reset" };
  if (body.keep !== undefined) {
    const cluster = body.cluster ?? [];
    if (!Array.isArray(cluster) || !cluster.every((x) => typeof x === "string")) {
      throw new LoraspecError("E_USAGE", '"cluster" must be the list of the cluster\'s images.', { field: "cluster" });
    }
    return { action: "keep", file: requireString(body.keep, "keep"), cluster };
  }
  const d = body.distinct;
  if (!Array.isArray(d) || d.length !== 2 || !d.every((x) => typeof x === "string" && x) || d[0] === d[1]) {
    throw new LoraspecError("E_USAGE", 'Send {"keep": image, "cluster": [images]} or {"distinct": [image, image]} (two different images), or {"reset": true}.', { field: "distinct" });
  }
  return { action: "distinct", files: [d[0], d[1]] };
}

/** Type (extension, declared type and magic bytes), name and decodability of every upload, before any is written. */
async function checkUploads(files: File[]): Promise<Array<{ name: string; data: Uint8Array }>> {
  const checked: Array<{ name: string; data: Uint8Array }> = [];
  for (const file of files) {
    const data = new Uint8Array(await file.arrayBuffer());
    const name = basename(file.name.replace(/\\/g, "/"));
    const kind = IMAGE_UPLOAD_TYPES.find((t) => t.ext.includes(extname(name).toLowerCase()));
    if (!kind || !kind.magic(data) || (file.type && file.type !== kind.mime)) {
      throw new LoraspecError("E_UNSUPPORTED_MEDIA_TYPE", `"${name}" is not a PNG, JPEG or WebP image.`, { file: name });
    }
    if (!/^[A-Za-z0-9][A-Za-z0-9 ._()-]*$/.test(name)) throw new LoraspecError("E_USAGE", `Unsafe file name "${name}".`, { file: name });
    checked.push({ name, data });
  }
  const sharp = (await import("sharp")).default;
  for (const { name, data } of checked) {
    await sharp(data, { limitInputPixels: SERVER_LIMITS.maxInputPixels, failOn: "error" })
      .metadata()
      .catch((error: Error) => {
        throw new LoraspecError("E_UNSUPPORTED_MEDIA_TYPE", `"${name}" cannot be decoded: ${error.message}`, { file: name });
      });
  }
  return checked;
}

/** A caption as the listing shows it: a leading byte-order mark dropped (dataset/caption-sidecar.ts decodeCaption). */
const withoutBom = (text: string) => text.replace(/^\ufeff/, "");
