import { trainRequestJsonSchema } from "./compile/worker-request.js";
import { contractJsonSchema } from "./contract/json-schema.js";
import { eventJsonSchema } from "./events.js";
import { BUILTIN_TRAINER } from "./knowledge/builtin-trainer.js";

/**
 * The files under schema/ that core is the source of and others read: editors (the contract), the
 * worker (its request, the built-in trainer table) and the worker's tests (the events).
 * Written by `npx tsx scripts/write-schema.ts`; a test fails when a committed copy is stale.
 */
export function schemaFiles(): Record<string, string> {
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  return {
    "lora-contract.schema.json": json(contractJsonSchema()),
    "worker-train-request.schema.json": json(trainRequestJsonSchema()),
    "loraspec-event.schema.json": json(eventJsonSchema()),
    "builtin-trainer.json": json(BUILTIN_TRAINER),
  };
}
