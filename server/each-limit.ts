// Runs `fn` over `items`, at most `n` at a time (a fleet's databases: a thousand requests at once
// overwhelm CouchDB and the event loop alike). The first failure rejects, as Promise.all does.
export async function eachLimit<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}
