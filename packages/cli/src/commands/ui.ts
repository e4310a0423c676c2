import type { Command } from "commander";
import pc from "picocolors";

interface UiOptions {
  port: string;
  host?: string;
  open: boolean;
  project?: string;
  contract?: string;
  rotateToken?: boolean;
  json?: boolean;
}

/** `loraspec ui [--port N] [--host H] [--no-open]`: the local web page over the same engine. */
export function registerUi(program: Command): void {
  program
    .command("ui")
    .description("Open the local web page: contract form with live lint and plan, dataset and captions, runs, validation, LoRA files.")
    .option("-p, --port <port>", "port to listen on (0: any free port)", "4747")
    .option("--host <host>", "interface to bind (default 127.0.0.1; another host exposes the page to the network, token still required)")
    .option("--no-open", "do not open a browser")
    .option("--project <dir>", "the project folder (default: the current folder)")
    .option("--contract <file>", "the contract file inside the project", "lora.yaml")
    .option("--json", "print where the page is served as one JSON line ({url, projectDir, port}) instead of the bare URL")
    .option("--rotate-token", "replace the project's access token (.loraspec/ui-token); pages opened with the old one must be reopened")
    .action(async (opts: UiOptions) => {
      const { resolve } = await import("node:path");
      const { LoraspecError } = await import("@loraspec/core/errors.js");
      const { startServer } = await import("@loraspec/engine/server/start-server.js");
      const { defaultDeps } = await import("@loraspec/engine/server/default-deps.js");
      const { createRunsService } = await import("@loraspec/engine/server/runs-service.js");
      const port = Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        throw new LoraspecError("E_USAGE", `--port must be a number from 0 to 65535, got "${opts.port}".`);
      }
      const projectDir = resolve(opts.project ?? process.cwd());
      const runs = createRunsService({ projectDir, onError: (e) => process.stderr.write(`${pc.red("run error")} ${String(e)}\n`) });
      const server = await startServer({
        ...defaultDeps(),
        runs,
        projectDir,
        contractFile: opts.contract,
        host: opts.host,
        port,
        rotateToken: opts.rotateToken,
      });
      process.stderr.write(`${pc.bold("loraspec ui")} serving ${pc.dim(projectDir)}\n`);
      if (opts.json) process.stdout.write(`${JSON.stringify({ ok: true, url: server.openUrl, projectDir, port: Number(new URL(server.openUrl).port) })}\n`);
      else process.stdout.write(`${server.openUrl}\n`);
      if (opts.host && !["127.0.0.1", "localhost", "::1"].includes(opts.host)) {
        process.stderr.write(
          `${pc.yellow("warning")} listening on ${opts.host}: anyone who can reach it and has the token can start runs and edit files in this project.\n`,
        );
      }
      if (opts.open) await openBrowser(server.openUrl);
      process.stderr.write(pc.dim("Ctrl-C to stop.\n"));
      await new Promise<void>((done) => {
        const stop = () => {
          for (const sig of ["SIGINT", "SIGTERM"] as const) process.off(sig, stop);
          // A second Ctrl-C does not wait: the next command reconciles what is left.
          process.once("SIGINT", () => process.exit(130));
          void stopStartedRuns(runs, (line) => process.stderr.write(`${line}\n`))
            .catch((error) => process.stderr.write(`${pc.red("error")} stopping runs: ${String(error)}\n`))
            .then(() => {
              runs.close();
              return server.close();
            })
            .then(done);
        };
        for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, stop);
      });
      // A fal run this page was polling keeps its timers; the remote job goes on and `train
      // --resume` re-attaches. Exit now rather than poll into a closed store.
      process.exit(0);
    });
}

/**
 * On Ctrl-C, the runs this page started (their supervisor.pid is this process) are stopped the
 * way `loraspec stop` does it (SIGINT so the trainer saves a checkpoint, then SIGTERM, SIGKILL) and
 * recorded `cancelled` before the store closes; `loraspec train --resume <id>` continues them. A
 * fal run is left running on fal (stopping the page must not cancel a paid job): it is recorded
 * `interrupted` by the next command and `--resume` re-attaches to it.
 */
async function stopStartedRuns(
  runs: import("@loraspec/engine/server/deps.js").RunsService,
  say: (line: string) => void,
): Promise<void> {
  const { readSupervisorPid } = await import("@loraspec/engine/run/supervisor-pid.js");
  const mine = (await runs.list()).filter((r) => {
    if (r.state !== "running" && r.state !== "starting") return false;
    try {
      // Bounded (run-files.ts): a supervisor.pid too large to be one is not this process's.
      return readSupervisorPid(r.runDir)?.pid === process.pid;
    } catch {
      return false;
    }
  });
  for (const run of mine) {
    if (run.trainer === "fal") {
      say(`run ${run.id}: left running on fal; resume with \`loraspec train --resume ${run.id}\``);
      continue;
    }
    say(`stopping run ${run.id} (the trainer saves a checkpoint first)`);
    await runs.stop(run.id);
    // The run's supervisor (this process) records the end; wait for it before closing the store.
    for (let i = 0; i < 100 && ["running", "starting"].includes((await runs.get(run.id)).state); i++) await new Promise((r) => setTimeout(r, 100));
    say(`run ${run.id}: ${(await runs.get(run.id)).state}; resume with \`loraspec train --resume ${run.id}\``);
  }
}

/** Opens the URL in the default browser; an argument array, never a shell string. */
async function openBrowser(url: string): Promise<void> {
  const { spawn } = await import("node:child_process");
  const [cmd, args] =
    process.platform === "darwin" ? ["open", [url]] : process.platform === "win32" ? ["explorer.exe", [url]] : ["xdg-open", [url]];
  try {
    const child = spawn(cmd, args, { stdio: "ignore", detached: true });
    child.on("error", () => {}); // no browser here (a server, CI): the printed URL is enough
    child.unref();
  } catch {
    // same: printing the URL is the fallback
  }
}
