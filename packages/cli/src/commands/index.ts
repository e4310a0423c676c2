import type { Command } from "commander";
import { registerCheck } from "./check.js";
import { registerPlan } from "./plan.js";
import { registerSample } from "./sample.js";

/** Each command lives in its own file and registers itself; heavy code loads lazily in actions. */
export type Registration = (program: Command) => void;

export const registrations: Registration[] = [registerCheck, registerPlan, registerSample];
