import { Worker } from "node:worker_threads";
import { LoraspecError } from "@loraspec/core/errors.js";

const HASHER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const hash = require("node:crypto").createHash("sha256");
parentPort.on("message", (m) => {
  if (m.bytes) {
    hash.update(m.bytes);
    parentPort.postMessage({ done: m.id });
  } else {
    parentPort.postMessage({ digest: hash.digest("hex") });
  }
});`;

/** sha256 of a stream of buffers, computed in a worker thread; buffers are reusable once update resolves. */
export class BackgroundHash {
  private readonly worker = new Worker(HASHER_SOURCE, { eval: true });
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  private next = 0;
  private failed: unknown;

  constructor() {
    this.worker.on("message", (m: { done?: number; digest?: string }) => {
      const id = m.digest !== undefined ? -1 : m.done!;
      const w = this.waiting.get(id);
      this.waiting.delete(id);
      w?.resolve(m.digest);
    });
    const fail = (error: unknown) => {
      this.failed ??= error;
      for (const w of this.waiting.values()) w.reject(error);
      this.waiting.clear();
    };
    this.worker.on("error", fail);
    this.worker.on("exit", () => fail(new LoraspecError("E_INTERNAL", "the hashing thread stopped")));
  }

  private ask(id: number, message: unknown): Promise<unknown> {
    if (this.failed) return Promise.reject(this.failed);
    const p = new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    this.worker.postMessage(message);
    return p;
  }

  /** Hashes bytes (shared memory is not copied; other bytes are). */
  update(bytes: Uint8Array): Promise<unknown> {
    const id = this.next++;
    return this.ask(id, { id, bytes });
  }

  async digest(): Promise<string> {
    return (await this.ask(-1, {})) as string;
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners("exit");
    await this.worker.terminate();
  }
}
