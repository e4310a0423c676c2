import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^@loraspec\/core$/, replacement: here("./packages/core/src/index.ts") },
      { find: /^@loraspec\/core\/(.*)$/, replacement: here("./packages/core/src/$1") },
      { find: /^@loraspec\/engine$/, replacement: here("./packages/engine/src/index.ts") },
      { find: /^@loraspec\/engine\/(.*)$/, replacement: here("./packages/engine/src/$1") },
    ],
  },
  test: {
    include: ["packages/*/src/**/*.spec.ts", "packages/*/test/**/*.spec.ts", "packages/*/test/**/*.spec.tsx"],
    globalSetup: ["./scripts/vitest-global-setup.ts"],
    // Tests that spawn the worker train tiny models on a 2-core CPU: generous but bounded.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Vitest's default is one fork fewer than the CPUs: one on CI's 2-core machine, where most files wait on a
    // child process (the worker, the CLI, a browser) and leave a core idle. Two forks there: the whole run
    // took 317 s against 586 s with one (2026-12-04, this 2-core machine; no test over 35 s of its 120 s).
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
