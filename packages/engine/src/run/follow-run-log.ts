import { existsSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { openRunStore, ACTIVE_STATES, supervisorAlive } from "./run-store.js";
import { RUN_FILES } from "./run-training.js";

/**
 * `loraspec logs <id> [-f]`: writes the run's log (the trainer's lines in the order the supervisor
 * read them; the raw stdout.log/stderr.log when no supervisor wrote one) and, with follow, keeps
 * writing new lines until the run is no longer active.
 */
export async function followRunLog(params: {
  projectDir: string;
  runId: string;
  follow?: boolean;
  write: (text: string) => void;
  signal?: AbortSignal;
  pollMs?: number;
}): Promise<void> {
  const store = openRunStore({ projectDir: params.projectDir });
  try {
    store.reconcile();
    const run = store.get(params.runId);
    // run.log is written by the supervising loraspec; when that process is gone but the trainer
    // still runs (loraspec was killed), only the trainer's own files keep growing.
    const raw = [join(run.runDir, "stdout.log"), join(run.runDir, "stderr.log")];
    const supervised = existsSync(join(run.runDir, RUN_FILES.log)) && !(ACTIVE_STATES.includes(run.state) && supervisorGone(run.runDir));
    const files = supervised ? [join(run.runDir, RUN_FILES.log)] : raw;
    const offsets = new Map<string, number>(files.map((f) => [f, 0]));
    const pump = async (): Promise<boolean> => {
      let any = false;
      for (const file of files) {
        if (!existsSync(file)) continue;
        const handle = await open(file, "r");
        try {
          const { size } = await handle.stat();
          const from = offsets.get(file) ?? 0;
          if (size <= from) continue;
          const buffer = Buffer.alloc(size - from);
          await handle.read(buffer, 0, buffer.length, from);
          offsets.set(file, size);
          // Raw trainer files redraw bars with \r: show each redraw as its own line.
          params.write(buffer.toString("utf8").replace(/\r(?!\n)/g, "\n"));
          any = true;
        } finally {
          await handle.close();
        }
      }
      return any;
    };
    await pump();
    if (!params.follow) return;
    for (;;) {
      if (params.signal?.aborted) return;
      const active = ACTIVE_STATES.includes(store.get(run.id).state);
      const got = await pump();
      if (!active && !got) return;
      if (!got) await new Promise((r) => setTimeout(r, params.pollMs ?? 250));
      // A supervisor that died is found by reconcile; the follow then ends.
      if (!got) store.reconcile();
    }
  } finally {
    store.close();
  }
}

function supervisorGone(runDir: string): boolean {
  const alive = supervisorAlive(runDir);
  return alive === false;
}
