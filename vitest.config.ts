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
  },
});
