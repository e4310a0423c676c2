import { existsSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { StringDecoder } from "node:string_decoder";
import { openRunStore } from "./run-store.js";
import { ACTIVE_STATES } from "./run-state.js";
import { supervisorAlive } from "./supervisor-pid.js";
import { RUN_FILES } from "./run-training.js";

/** Bytes of a log read and written at a time: a multi-GB log is never one buffer. */
const LOG_READ_CHUNK_BYTES = 8 * 1024 * 1024;

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
  /** Bytes read and written at a time (tests set a small one to put a boundary where they want it). */
  chunkBytes?: number;
}): Promise<void> {
  const chunkBytes = params.chunkBytes ?? LOG_READ_CHUNK_BYTES;
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
    // One decoder per file: a character split between two reads is written whole.
    const decoders = new Map(files.map((f) => [f, new StringDecoder("utf8")]));
    // A "\r" that ends a read is held until the next one shows whether "\n" follows: a "\r\n" split
    // between two reads is one line end, not a redraw and then a blank line.
    const heldCR = new Set<string>();
    const flushHeld = () => {
      for (const file of files) if (heldCR.delete(file)) params.write("\n");
    };
    const pump = async (): Promise<boolean> => {
      let any = false;
      for (const file of files) {
        if (!existsSync(file)) continue;
        const handle = await open(file, "r");
        try {
          const { size } = await handle.stat();
          // A log that grew with a long run is written piece by piece, never held whole.
          for (let from = offsets.get(file) ?? 0; from < size; ) {
            const buffer = Buffer.alloc(Math.min(size - from, chunkBytes));
            const { bytesRead } = await handle.read(buffer, 0, buffer.length, from);
            if (bytesRead === 0) break; // shrank since the stat
            from += bytesRead;
            offsets.set(file, from);
            let text = decoders.get(file)!.write(buffer.subarray(0, bytesRead));
            if (heldCR.delete(file)) text = `\r${text}`;
            if (text.endsWith("\r")) {
              heldCR.add(file);
              text = text.slice(0, -1);
            }
            // Raw trainer files redraw bars with \r: show each redraw as its own line.
            if (text) params.write(text.replace(/\r(?!\n)/g, "\n"));
            any = true;
          }
          // Two raw files interleave: the other's lines must not run on after a held bar redraw.
          if (files.length > 1 && heldCR.delete(file)) params.write("\n");
        } finally {
          await handle.close();
        }
      }
      return any;
    };
    await pump();
    if (!params.follow) return flushHeld();
    for (;;) {
      if (params.signal?.aborted) return flushHeld();
      const active = ACTIVE_STATES.includes(store.get(run.id).state);
      const got = await pump();
      if (!active && !got) return flushHeld();
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
