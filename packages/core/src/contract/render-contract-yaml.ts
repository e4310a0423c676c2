import { Document, isMap, isPair, isScalar, isSeq, type Node } from "yaml";
import type { ContractInput } from "./schema.js";
import type { Reason } from "./recommend-contract.js";

export interface RenderContractParams {
  contract: ContractInput;
  reasons?: Record<string, Reason>;
  /** Path or URL of the JSON Schema for the `yaml-language-server` comment (editor completion). */
  schemaRef?: string;
  /** First comment lines (what this file is). */
  header?: string[];
}

/**
 * Serialises a contract to YAML with the yaml Document API: each chosen value gets a comment
 * above it saying why, with its source. Never string interpolation.
 */
export function renderContractYaml({ contract, reasons = {}, schemaRef, header = [] }: RenderContractParams): string {
  const doc = new Document(contract);
  const top = [...(schemaRef ? [` yaml-language-server: $schema=${schemaRef}`] : []), ...header.map((h) => ` ${h}`)];
  if (top.length) doc.commentBefore = top.join("\n");
  for (const [path, reason] of Object.entries(reasons)) {
    const keys = path.split(".");
    const parent = keys.length === 1 ? doc.contents : doc.getIn(keys.slice(0, -1), true);
    if (!isMap(parent)) continue;
    const pair = parent.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === keys[keys.length - 1]);
    if (!pair || !isScalar(pair.key)) continue;
    pair.key.commentBefore = ` ${reason.why}\n   source: ${reason.source}`;
  }
  // Numbers that read better in exponent form, short lists on one line.
  const lr = doc.getIn(["hyperparameters", "learning_rate"], true);
  if (isScalar(lr) && typeof lr.value === "number" && lr.value < 0.01) lr.format = "EXP";
  visit(doc.contents as Node, (node) => {
    if (isSeq(node) && node.items.every((i) => isScalar(i) && typeof i.value !== "string")) node.flow = true;
  });
  return doc.toString({ lineWidth: 0 });
}

function visit(node: Node | null | undefined, fn: (n: Node) => void): void {
  if (!node) return;
  fn(node);
  if (isMap(node)) for (const p of node.items) visit(p.value as Node, fn);
  else if (isSeq(node)) for (const i of node.items) visit(i as Node, fn);
}
