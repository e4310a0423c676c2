// Builds the CLI bundle once so tests that spawn `bin/loraspec.mjs` run the current code.
import { buildCli } from "./build.mjs";

export default async function setup(): Promise<void> {
  await buildCli({ quiet: true });
}
