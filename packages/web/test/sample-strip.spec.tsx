import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { SampleStrip, sampleGrid } from "../src/components/sample-strip.js";

const s = (step: number, seed: number, prompt = "a photo of txcl") => ({ path: `.loraspec/runs/r1/output/samples/step-${String(step).padStart(6, "0")}-p0-s${seed}.png`, step, prompt, seed });

describe("the runs page's sample strip", () => {
  it("lays samples out as a row per prompt x seed and a column per step, oldest first", () => {
    const grid = sampleGrid([s(500, 42), s(250, 42), s(250, 7), s(500, 42, "txcl in Paris")]);
    expect(grid.steps).toEqual([250, 500]);
    expect(grid.rows.map((r) => [r.prompt, r.seed, r.cells.map((c) => c?.step)])).toEqual([
      ["a photo of txcl", 42, [250, 500]],
      ["a photo of txcl", 7, [250, undefined]],
      ["txcl in Paris", 42, [undefined, 500]],
    ]);
  });

  it("renders each image through /files/ with its step, and says when there is none", () => {
    const html = renderToStaticMarkup(<SampleStrip samples={[s(250, 42), s(500, 42)]} />);
    expect(html).toContain('src="/files/.loraspec/runs/r1/output/samples/step-000250-p0-s42.png"');
    expect(html.indexOf("step 250")).toBeLessThan(html.indexOf("step 500"));
    expect(renderToStaticMarkup(<SampleStrip samples={[]} />)).toContain("No samples yet.");
  });

  it("names the step-0 column (samples.first) the base", () => {
    const html = renderToStaticMarkup(<SampleStrip samples={[s(0, 42), s(250, 42)]} />);
    expect(html).toContain(">step 0 · base</th>");
    expect(html.indexOf("base")).toBeLessThan(html.indexOf("250"));
    expect(renderToStaticMarkup(<SampleStrip samples={[s(250, 42)]} />)).not.toContain("base");
  });

  it("escapes a hostile prompt (text, never markup)", () => {
    const html = renderToStaticMarkup(<SampleStrip samples={[s(1, 1, '<img src=x onerror="alert(1)">')]} />);
    expect(html).not.toContain("<img src=x");
    expect(html).toContain("&lt;img src=x");
  });
});
