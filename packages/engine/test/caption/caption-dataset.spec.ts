import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { LoraspecError } from "@loraspec/core/errors.js";
import { captionDataset, type CaptionSummary } from "@loraspec/engine/caption/caption-dataset.js";
import { createFalCaptioner } from "@loraspec/engine/caption/fal-captioner.js";
import { fixCaptions } from "@loraspec/engine/caption/fix-captions.js";
import { createOpenAICaptioner } from "@loraspec/engine/caption/openai-captioner.js";
import type { Captioner } from "@loraspec/engine/caption/captioner.js";
import { startCaptionEmulator, type CaptionEmulator } from "./caption-emulators.js";

const FAST_RETRY = { maxRetries: 4, initialDelayMs: 1, maxDelayMs: 5, factor: 2, jitter: 0 };
let emulator: CaptionEmulator;
let root: string;

const colours: Record<string, [number, number, number]> = { r: [220, 20, 20], g: [20, 200, 20], b: [20, 20, 220] };

async function makeFolder(name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  const images = ["one-r.png", "two-g.png", "three-b.png", "four-r.png", "five-g.png", "six-b.png"];
  for (const image of images) {
    const [r, g, b] = colours[image.split("-")[1]![0]!]!;
    await sharp({ create: { width: 64, height: 48, channels: 3, background: { r, g, b } } }).png().toFile(join(dir, image));
  }
  // Two images already have captions: one good, one without the trigger. Neither may change.
  await writeFile(join(dir, "one-r.txt"), "txcl, hand-written caption\n");
  await writeFile(join(dir, "two-g.txt"), "a hand-written caption that lacks the trigger\n");
  return dir;
}

async function run(dir: string, captioner: Captioner, extra: Partial<Parameters<typeof captionDataset>[0]> = {}) {
  const events = await collectEvents(captionDataset({ dir, captioner, trigger: "txcl", style: "natural", target: "character", retry: FAST_RETRY, concurrency: 2, ...extra }));
  return { events, summary: (events.find((e) => e.type === "done") as unknown as { result: CaptionSummary }).result };
}

const backends: Array<[string, () => Captioner]> = [
  ["openai", () => createOpenAICaptioner({ baseUrl: `${emulator.url}/v1`, model: "tiny-vlm", apiKey: "sk-test" })],
  ["fal", () => createFalCaptioner({ credentials: "test-key", fetch: emulator.falFetch, pollIntervalMs: 5, retry: FAST_RETRY })],
];

beforeAll(async () => {
  emulator = await startCaptionEmulator();
  root = await mkdtemp(join(tmpdir(), "loraspec-caption-"));
});
afterAll(async () => {
  await emulator.close();
  await rm(root, { recursive: true, force: true });
});
beforeEach(() => {
  emulator.failEvery = 0;
  emulator.forceStatus = undefined;
  emulator.requests.length = 0;
});

describe.each(backends)("captionDataset with the %s backend", (name, make) => {
  it("fills only missing captions, trigger first, through a server that fails every third request", async () => {
    const dir = await makeFolder(`fill-${name}`);
    emulator.failEvery = 3;
    const { summary, events } = await run(dir, make());
    expect(summary.failed).toEqual([]);
    expect(summary.written).toEqual(["five-g.txt", "four-r.txt", "six-b.txt", "three-b.txt"]);
    expect(summary.kept).toBe(2);
    expect(emulator.requests.some((r) => r.authorization === (name === "openai" ? "Bearer sk-test" : "Key test-key"))).toBe(true);
    for (const [file, colour] of [["three-b.txt", "blue"], ["four-r.txt", "red"], ["five-g.txt", "green"], ["six-b.txt", "blue"]] as const) {
      const text = await readFile(join(dir, file), "utf8");
      expect(text.startsWith("txcl, ")).toBe(true);
      expect(text).toContain(`${colour} tones`);
      expect(text.endsWith("\n")).toBe(true);
    }
    expect(await readFile(join(dir, "one-r.txt"), "utf8")).toBe("txcl, hand-written caption\n");
    expect(await readFile(join(dir, "two-g.txt"), "utf8")).toBe("a hand-written caption that lacks the trigger\n");
    expect(events.filter((e) => e.type === "progress").at(-1)).toMatchObject({ task: "caption", current: 4, total: 4 });
    // The caption without its trigger is reported by the rules.
    expect(summary.findings.find((f) => f.caption === "two-g.txt")?.findings.map((f) => f.code)).toContain("trigger-missing");
  });

  it("replaces captions only with overwrite", async () => {
    const dir = await makeFolder(`overwrite-${name}`);
    const { summary } = await run(dir, make(), { overwrite: true });
    expect(summary.written).toHaveLength(6);
    expect(await readFile(join(dir, "one-r.txt"), "utf8")).toMatch(/^txcl, .*red tones/);
  });
});

describe("fal endpoint shapes", () => {
  it.each([
    ["fal-ai/florence-2-large/more-detailed-caption", undefined, false],
    ["fal-ai/any-llm/vision", "some/vision-model", true],
  ] as const)("%s gets image_url%s", async (endpoint, model, prompted) => {
    const dir = await makeFolder(`shape-${endpoint.replace(/\W+/g, "-")}`);
    const captioner = createFalCaptioner({ endpoint, model, credentials: "k", fetch: emulator.falFetch, pollIntervalMs: 5, retry: FAST_RETRY });
    const { summary } = await run(dir, captioner);
    expect(summary.written).toHaveLength(4);
    const submits = emulator.requests.filter((r) => r.method === "POST");
    expect(submits.every((r) => r.path === `/${endpoint}`)).toBe(true);
    const body = submits[0]!.body as Record<string, unknown>;
    expect(String(body.image_url)).toMatch(/^data:image\/jpeg;base64,/);
    expect("prompt" in body).toBe(prompted);
    expect(body.model).toBe(model);
  });
});

describe("captionDataset failures", () => {
  it("stops at once on a rejected key, without retrying", async () => {
    const dir = await makeFolder("auth");
    emulator.forceStatus = 401;
    await expect(run(dir, backends[0]![1]())).rejects.toMatchObject({ code: "E_REMOTE_AUTH" });
    expect(emulator.requests.length).toBeLessThanOrEqual(2);
  });

  it("reports an image that keeps failing and carries on with the rest", async () => {
    const dir = await makeFolder("flaky");
    const base = backends[0]![1]();
    const overloaded = () => new LoraspecError("E_REMOTE", "503 overloaded", { retryable: true });
    const captioner: Captioner = { backend: "openai", caption: (r) => (r.name === "four-r.png" ? Promise.reject(overloaded()) : base.caption(r)) };
    const { summary } = await run(dir, captioner);
    expect(summary.failed.map((f) => f.image)).toEqual(["four-r.png"]);
    expect(summary.written).toEqual(["five-g.txt", "six-b.txt", "three-b.txt"]);
    expect(summary.retries).toBe(FAST_RETRY.maxRetries);
  });

  it.each<[string, () => Error, number]>([
    ["a 4xx answer", () => new LoraspecError("E_REMOTE", "400 bad request", { retryable: false }), 0],
    ["a bug (plain Error)", () => new Error("boom"), 0],
    ["a 503", () => new LoraspecError("E_REMOTE", "503", { retryable: true }), FAST_RETRY.maxRetries],
  ])("retries only retryable errors: %s", async (_, make, retries) => {
    const dir = await makeFolder(`retry-${retries}-${Math.random()}`);
    const captioner: Captioner = { backend: "openai", caption: (r) => (r.name === "four-r.png" ? Promise.reject(make()) : Promise.resolve("a caption")) };
    const { summary } = await run(dir, captioner);
    expect(summary.retries).toBe(retries);
    expect(summary.failed).toHaveLength(1);
  });

  it("a server that hangs: each request times out (one retry), progress lines keep coming, nothing blocks", async () => {
    const dir = await makeFolder("hang");
    const hang: typeof fetch = (_url, init) => new Promise((_, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal!.reason)));
    const captioner = createOpenAICaptioner({ baseUrl: "http://127.0.0.1:9/v1", model: "m", timeoutMs: 40, fetch: hang });
    const started = Date.now();
    const { events, summary } = await run(dir, captioner, { heartbeatMs: 15, concurrency: 4 });
    expect(summary.failed.map((f) => f.code)).toEqual(["E_TIMEOUT", "E_TIMEOUT", "E_TIMEOUT", "E_TIMEOUT"]);
    expect(summary.retries).toBe(4); // one retry each
    expect(Date.now() - started).toBeLessThan(5000);
    expect(events.some((e) => e.type === "progress" && /waiting on openai/.test(e.message ?? ""))).toBe(true);
  });

  it("a chatty answer is cleaned (preamble, quotes, closing offer) and flagged", async () => {
    const dir = await makeFolder("chatty");
    const captioner: Captioner = { backend: "openai", caption: async () => 'Sure! Here is a caption: "a round creature waving in a meadow." Let me know if you need more.' };
    const { events, summary } = await run(dir, captioner);
    expect(await readFile(join(dir, "three-b.txt"), "utf8")).toBe("txcl, a round creature waving in a meadow.\n");
    expect(summary.cleaned.map((c) => c.caption).sort()).toEqual(["five-g.txt", "four-r.txt", "six-b.txt", "three-b.txt"]);
    expect(events.some((e) => e.type === "warning" && e.code === "caption-cleaned")).toBe(true);
  });

  it("an image that cannot be decoded is E_IMAGE_UNREADABLE, not E_INTERNAL", async () => {
    const dir = await makeFolder("undecodable");
    await writeFile(join(dir, "bad-r.png"), "not a png");
    const { summary } = await run(dir, { backend: "openai", caption: async () => "a caption" });
    expect(summary.failed).toEqual([expect.objectContaining({ image: "bad-r.png", code: "E_IMAGE_UNREADABLE" })]);
  });

  it("stops when the signal aborts and keeps what was written", async () => {
    const dir = await makeFolder("abort");
    const controller = new AbortController();
    const base = backends[0]![1]();
    let calls = 0;
    const captioner: Captioner = {
      backend: "openai",
      caption: async (r) => {
        if (++calls === 2) controller.abort();
        return base.caption(r);
      },
    };
    await expect(run(dir, captioner, { signal: controller.signal, concurrency: 1 })).rejects.toMatchObject({ code: "E_CANCELLED" });
    expect(await readFile(join(dir, "five-g.txt"), "utf8")).toMatch(/^txcl/);
  });
});

describe("fixCaptions", () => {
  it("puts the trigger first in existing captions and leaves good ones alone", async () => {
    const dir = await makeFolder("fix");
    await writeFile(join(dir, "three-b.txt"), "a man standing, TXCL, outdoors");
    const events = await collectEvents(fixCaptions({ dir, trigger: "txcl", style: "natural" }));
    const summary = (events.find((e) => e.type === "done") as unknown as { result: { fixed: string[]; unchanged: number; missing: string[] } }).result;
    expect(summary.fixed).toEqual(["three-b.txt", "two-g.txt"]);
    expect(summary.unchanged).toBe(1);
    expect(summary.missing).toEqual(["five-g.png", "four-r.png", "six-b.png"]);
    expect(await readFile(join(dir, "two-g.txt"), "utf8")).toBe("txcl, a hand-written caption that lacks the trigger\n");
    expect(await readFile(join(dir, "one-r.txt"), "utf8")).toBe("txcl, hand-written caption\n");
  });

  it("moves the trigger: its other occurrence goes", async () => {
    const dir = await makeFolder("move");
    await writeFile(join(dir, "three-b.txt"), "a photo of txcl sitting");
    await collectEvents(fixCaptions({ dir, trigger: "txcl", style: "natural" }));
    expect(await readFile(join(dir, "three-b.txt"), "utf8")).toBe("txcl, a photo of sitting\n");
  });
});
