import { describe, expect, it } from "vitest";
import { RULES } from "@loraspec/core/lint/finding.js";
import { preparedDrift, preparedImages, preparedStaleFinding } from "@loraspec/engine/dataset/prepared-stale.js";
import type { ManifestEntry } from "@loraspec/engine/dataset/prep-manifest.js";

const entry = (source: string, sha256: string, status: ManifestEntry["status"] = "prepared", size = 10): ManifestEntry => ({
  source,
  size,
  sha256,
  width: 100,
  height: 80,
  status,
  problems: [],
  ...(status === "prepared" ? { output: `${source.replace(/\//g, "__").replace(/\.\w+$/, "")}.png`, outputWidth: 64, outputHeight: 64 } : {}),
});

describe("a prepared folder compared with its dataset (prepared-stale.ts)", () => {
  const manifest = { entries: [entry("a.png", "aa"), entry("b.png", "bb"), entry("sub/c.jpg", "cc"), entry("d.png", "dd", "skipped"), entry("e.png", "aa", "duplicate")] };

  it("is up to date when every image prep read is there with the same bytes (skipped and duplicates included)", () => {
    const sources = manifest.entries.map((e) => ({ file: e.source, size: e.size, sha256: e.sha256 }));
    expect(preparedDrift(manifest, { sources })).toEqual({ added: [], removed: [], changed: [], captions: [], pins: [], settings: [] });
    expect(preparedStaleFinding(preparedDrift(manifest, { sources }), { preparedDir: "p", preparedCount: 3, countedNow: 3 })).toBeUndefined();
  });

  it("names images added, removed and replaced (same name, other bytes or size); an unread hash is not a change", () => {
    const sources = [
      { file: "a.png", size: 10, sha256: "zz" },
      { file: "sub/c.jpg", size: 11, sha256: "cc" },
      { file: "d.png", size: 10, sha256: "" },
      { file: "e.png", size: 10, sha256: "aa" },
      { file: "new.png", size: 5, sha256: "nn" },
    ];
    const drift = preparedDrift(manifest, { sources });
    expect(drift).toEqual({ added: ["new.png"], removed: ["b.png"], changed: ["a.png", "sub/c.jpg"], captions: [], pins: [], settings: [] });
    const f = preparedStaleFinding(drift, { preparedDir: ".loraspec/prepared", preparedCount: 3, countedNow: 3, contractFile: "lora.yaml" })!;
    expect(f).toMatchObject({ rule: "dataset-prepared-stale", severity: "error", files: ["b.png", "new.png", "a.png", "sub/c.jpg"] });
    expect(f.message).toContain("1 removed (b.png), 1 added (new.png), 2 changed (a.png, sub/c.jpg)");
    expect(f.fix).toContain("`loraspec prep lora.yaml`");
    expect(RULES.find((r) => r.id === f.rule)?.severity).toBe("error");
  });

  it("is stale when the contract now asks for another resolution or aspect than prep made it at", () => {
    const sources = manifest.entries.map((e) => ({ file: e.source, size: e.size, sha256: e.sha256 }));
    const made = { ...manifest, settings: { resolution: 1024, aspect: "square", crop: "center" } };
    expect(preparedDrift(made, { sources }, { settings: { resolution: 1024, aspect: "square" } }).settings).toEqual([]);
    const drift = preparedDrift(made, { sources }, { settings: { resolution: 768, aspect: "buckets" } });
    expect(drift.settings).toEqual(["resolution 1024 -> 768", "aspect square -> buckets"]);
    expect(preparedStaleFinding(drift, { preparedDir: "p", preparedCount: 3, countedNow: 3 })?.message).toContain("the contract now asks for resolution 1024 -> 768, aspect square -> buckets");
    // A manifest without those settings (older prep) is judged on its images alone.
    expect(preparedDrift(manifest, { sources }, { settings: { resolution: 768 } }).settings).toEqual([]);
  });

  it("a manifest's recorded inputs are judged kind by kind; a value that is not JSON (a hand edit) is only said to have changed", () => {
    const sources = [{ file: "a.png", size: 10, sha256: "aa" }];
    const inputs = [
      { kind: "image", name: "a.png", value: "10:aa" },
      { kind: "caption", name: "a.txt", value: "t1" },
      { kind: "setting", name: "resolution", value: "{not json" },
      { kind: "from-a-later-version", name: "x", value: "y" },
    ];
    const drift = preparedDrift({ entries: [], inputs }, { sources, captionFiles: [{ file: "a.txt", sha256: "t2" }] }, { settings: { resolution: 512 }, pins: { keep: ["a.png"], distinct: [] } });
    expect(drift).toEqual({ added: [], removed: [], changed: [], captions: ["a.txt"], pins: [".loraspec/dataset-pins.json"], settings: ["resolution changed"] });
    // Captions and pins the caller did not read are not judged.
    expect(preparedDrift({ entries: [], inputs }, { sources }, { settings: { resolution: 512 } })).toMatchObject({ captions: [], pins: [] });
  });

  it("counts what the prepared folder trains on: its prepared outputs, at the size prep wrote", () => {
    const images = preparedImages(manifest, { images: [{ file: "a.png", width: 100, height: 80, format: "png", caption: "txcl, a" }] });
    expect(images).toEqual([
      { file: "a.png", width: 64, height: 64, format: "png", caption: "txcl, a" },
      { file: "b.png", width: 64, height: 64, format: "png", caption: null },
      { file: "sub__c.png", width: 64, height: 64, format: "png", caption: null },
    ]);
  });
});
