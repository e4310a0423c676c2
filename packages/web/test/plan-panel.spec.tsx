import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { checkContractText } from "../src/contract-live.js";
import { PlanPanel } from "../src/pages/project-page.js";

/** The page's plan shows what `loraspec plan` shows: a setting only where the trainer is handed it (plan.receives). */
const contract = (trainer: string) => `version: 1
name: x
base: { model: flux1-dev${trainer === "fal" ? "" : ", path: /models/base"} }
trainer: { name: ${trainer} }
hardware: { kind: ${trainer === "fal" ? "fal" : "local"}${trainer === "fal" ? "" : ", gpu: RTX 4090"} }
target: character
dataset: { path: ./dataset, expected_images: 20 }
trigger: { word: txcl }
`;

describe("the page's plan view", () => {
  it("fal: no VRAM, rank/alpha, batch, resolution or GPU table (fal picks them); says what is not sent", () => {
    const html = renderToStaticMarkup(<PlanPanel check={checkContractText(contract("fal"))} />);
    for (const label of ["<dt>rank / alpha</dt>", "<dt>VRAM</dt>", "<dt>batch</dt>", "<dt>resolution</dt>", "<dt>checkpoints</dt>", "<th>GPU</th>"]) expect(html).not.toContain(label);
    expect(html).toContain("not sent:");
    expect(html).toContain("chosen by fal");
  });

  it("kohya: every setting, with the GPU table", () => {
    const html = renderToStaticMarkup(<PlanPanel check={checkContractText(contract("kohya"))} />);
    for (const label of ["<dt>learning rate</dt>", "<dt>rank / alpha</dt>", "<dt>VRAM</dt>", "<dt>batch</dt>", "<dt>resolution</dt>", "<th>GPU</th>"]) expect(html).toContain(label);
    expect(html).not.toContain("not sent:");
  });
});
