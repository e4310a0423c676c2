import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { hiddenFilesFinding } from "@loraspec/engine/dataset/dataset-findings.js";
import { HiddenFiles } from "../src/pages/hidden-files.js";

describe("the Dataset page's hidden-files line", () => {
  it("says what check says of the hidden files the grid leaves out, the first few named", () => {
    const hidden = ["._a.jpg", ".DS_Store", ...Array.from({ length: 9 }, (_, i) => `.x${i}.png`)];
    const html = renderToStaticMarkup(<HiddenFiles finding={hiddenFilesFinding(hidden)} />);
    expect(html).toContain('data-testid="hidden-files"');
    expect(html).toContain("prep and the trainers leave out 11 hidden file(s) (names starting with &quot;.&quot;): ._a.jpg, .DS_Store, .x0.png");
    expect(html).toContain(".x5.png and 3 more");
    expect(html).toContain("an image meant to train must not start with");
  });

  it("shows nothing when the folder has no hidden files", () => {
    expect(renderToStaticMarkup(<HiddenFiles finding={hiddenFilesFinding([])} />)).toBe("");
  });
});
