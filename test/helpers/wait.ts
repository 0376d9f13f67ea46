// Polling for eventually-consistent facts (replication, the fleet index, an agent's pass): checks
// `pred` every `interval` ms and fails with what it last saw (plus any `context`, e.g. process output).
export interface EventuallyOptions { ms?: number; interval?: number; context?: () => string }

export async function eventually<T>(what: string, fn: () => Promise<T>, pred: (v: T) => boolean, o: EventuallyOptions = {}): Promise<T> {
  const end = Date.now() + (o.ms ?? 20_000);
  let v = await fn();
  while (!pred(v)) {
    if (Date.now() > end) {
      const extra = o.context ? `\n${o.context().slice(-3000)}` : '';
      throw new Error(`timed out after ${o.ms ?? 20_000} ms waiting for ${what}; last value ${JSON.stringify(v)?.slice(0, 500)}${extra}`);
    }
    await new Promise((r) => setTimeout(r, o.interval ?? 100));
    v = await fn();
  }
  return v;
}
