import { z } from "zod";
import { ContractSchema } from "./schema.js";

/** The JSON Schema of what a user may write in lora.yaml (input side: defaults are optional). */
export function contractJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ContractSchema, { io: "input" }) as Record<string, unknown>;
}
