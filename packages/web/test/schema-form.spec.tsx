import { describe, expect, it } from "vitest";
import { renderToStaticMarkup } from "react-dom/server";
import { SchemaForm, type JsonSchema } from "../src/components/schema-form.js";
import { contractJsonSchema } from "@loraspec/core/contract/json-schema.js";

describe("SchemaForm", () => {
  it("renders a nested section (dataset.buckets) as one field per property at its full path", () => {
    const html = renderToStaticMarkup(
      <SchemaForm
        schema={contractJsonSchema() as JsonSchema}
        value={{ dataset: { path: "./d", aspect: "buckets", buckets: { min_side: 320, resolutions: [512, 768] } } }}
        problems={new Map()}
        onChange={() => {}}
      />,
    );
    for (const f of ["min_side", "max_side", "step", "resolutions"]) expect(html).toContain(`data-field="dataset.buckets.${f}"`);
    expect(html).toMatch(/id="f-dataset-buckets-min_side"[^>]*value="320"|value="320"[^>]*id="f-dataset-buckets-min_side"/);
    expect(html).toContain("512, 768");
  });
});
