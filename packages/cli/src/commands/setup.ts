import type { Command } from "commander";
import { LoraspecError } from "@loraspec/core/errors.js";
import { renderEvents } from "../render-events.js";

const TARGETS = ["kohya", "ai-toolkit", "worker"] as const;

/** `loraspec setup kohya|ai-toolkit|worker`: install an external trainer (pinned) or the Python worker. */
export function registerSetup(program: Command): void {
  program
    .command("setup")
    .description(
      "Install a trainer: kohya (sd-scripts, pinned tag) or ai-toolkit (pinned commit) into loraspec's cache with its own venv, or the built-in Python worker (into the cache for an npm install, worker/.venv in a checkout).",
    )
    .argument("<trainer>", `one of: ${TARGETS.join(", ")}`)
    .option("--source <dir>", "use this existing checkout instead of cloning the pinned version (kohya, ai-toolkit)")
    .option("--cache-dir <dir>", "loraspec's cache folder (default $LORASPEC_CACHE_DIR or ~/.cache/loraspec)")
    .option("--python <path>", "the Python that creates the venv (default $LORASPEC_PYTHON or python3)")
    .option("--torch-index-url <url>", "wheel index for torch (default: the CUDA build the trainer's README names; 'skip' to keep yours)")
    .option("--json", "print events as JSON lines")
    .action(async (trainer: string, opts: { source?: string; cacheDir?: string; python?: string; torchIndexUrl?: string; json?: boolean }) => {
      if (!(TARGETS as readonly string[]).includes(trainer)) {
        throw new LoraspecError("E_USAGE", `Unknown trainer "${trainer}".`, { hint: `Use one of: ${TARGETS.join(", ")}.` });
      }
      const controller = new AbortController();
      const onSigint = () => controller.abort();
      process.once("SIGINT", onSigint);
      try {
        if (trainer === "worker") {
          if (opts.source) throw new LoraspecError("E_USAGE", "--source applies to kohya and ai-toolkit, not the worker.");
          const { setupWorker } = await import("@loraspec/engine/worker/setup-worker.js");
          const env = opts.cacheDir ? { ...process.env, LORASPEC_CACHE_DIR: opts.cacheDir } : undefined;
          const done = await renderEvents(setupWorker({ signal: controller.signal, env, ...(opts.python ? { basePython: opts.python } : {}) }), { json: opts.json });
          if (!opts.json && done) process.stderr.write(`worker ready: ${String(done.venv)} (torch ${String(done.torchBuild)} build); \`loraspec doctor\` shows the rest\n`);
          return;
        }
        const { setupTrainer } = await import("@loraspec/engine/setup/setup-trainer.js");
        const result = await renderEvents(
          setupTrainer({
            trainer: trainer as "kohya" | "ai-toolkit",
            source: opts.source,
            cacheDir: opts.cacheDir,
            python: opts.python,
            torchIndexUrl: opts.torchIndexUrl,
            signal: controller.signal,
          }),
          { json: opts.json },
        );
        if (!opts.json && result) process.stderr.write(`${trainer} ${String(result.version)} ready: ${String(result.trainerDir)} (venv ${String(result.venvDir)})\n`);
      } finally {
        process.off("SIGINT", onSigint);
      }
    });
}
