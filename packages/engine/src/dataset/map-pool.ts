/**
 * Runs `fn` over `items` with at most `concurrency` in flight and yields results as they finish
 * (so progress flows), stopping early when `signal` aborts. Never exported from the package.
 */
export async function* mapPool<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
  signal?: AbortSignal,
): AsyncGenerator<R> {
  const running = new Map<number, Promise<{ id: number; value: R }>>();
  let next = 0;
  const start = () => {
    const id = next++;
    running.set(id, fn(items[id]!, id).then((value) => ({ id, value })));
  };
  while (next < items.length && running.size < Math.max(1, concurrency)) start();
  try {
    while (running.size > 0) {
      const { id, value } = await Promise.race(running.values());
      running.delete(id);
      if (signal?.aborted) return;
      if (next < items.length) start();
      yield value;
    }
  } finally {
    // Nothing runs on once the caller has an error, a cancel, or stopped reading: prep removes its staging
    // folder right after, and an item still in flight would write into it again.
    await Promise.allSettled(running.values());
  }
}
