import type { LoraspecEvent } from "@loraspec/core/events.js";
import type { RunStore } from "./run-store.js";

/** Step and last-line updates to the store, at most once a second (the store is shared). */
export function throttledProgress(store: RunStore, id: string) {
  let pending: { step?: number; totalSteps?: number; lastLogLine?: string } = {};
  let last = 0;
  const flush = () => {
    if (Object.keys(pending).length === 0) return;
    store.update(id, pending);
    pending = {};
    last = Date.now();
  };
  return {
    onEvent(event: LoraspecEvent) {
      if (event.type === "progress" && event.task === "train") {
        pending.step = event.current;
        pending.totalSteps = event.total;
      } else if (event.type === "log" || event.type === "warning" || event.type === "error") {
        pending.lastLogLine = event.message;
      } else if (event.type === "checkpoint") {
        flush();
      }
      if (Date.now() - last >= 1000) flush();
    },
    flush,
  };
}
