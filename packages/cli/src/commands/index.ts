import type { Command } from "commander";

/** Each command lives in its own file and registers itself; heavy code loads lazily in actions. */
export type Registration = (program: Command) => void;

export const registrations: Registration[] = [];
