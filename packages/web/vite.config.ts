import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// The page imports the pure core (schema, lint, plan) so the browser checks a contract live.
export default defineConfig({
  root: here("."),
  base: "./",
  plugins: [react()],
  resolve: {
    alias: [
      { find: /^@loraspec\/core\/(.*)$/, replacement: here("../core/src/$1") },
      { find: /^@loraspec\/core$/, replacement: here("../core/src/index.ts") },
    ],
  },
  build: {
    outDir: here("dist"),
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
  },
  logLevel: "warn",
});
