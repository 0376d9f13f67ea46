// Logs: the system writes stdout+stderr straight into <sys>/log (O_APPEND, no process of ours in the
// path). The cap is kept by copy-truncate whenever the runtime looks at the system: log → log.1, log
// emptied; the writer's O_APPEND offset follows the truncation. Between two looks the log may exceed
// the cap; lines written during the copy may be lost (the price of keeping no pipe process alive).
import { promises as fsp } from 'node:fs';
import { errnoOf } from './errors.ts';
import { sleep } from './proc.ts';

export async function rotateLog(log: string, maxBytes: number): Promise<boolean> {
  let size: number;
  try {
    size = (await fsp.stat(log)).size;
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return false;
    throw e;
  }
  if (size <= maxBytes) return false;
  await fsp.copyFile(log, `${log}.1.tmp`);
  await fsp.rename(`${log}.1.tmp`, `${log}.1`);
  await fsp.truncate(log, 0);
  return true;
}

/** The last `bytes` of the log (the rotated part included when the current one is short). */
export async function tailLog(log: string, bytes: number): Promise<string> {
  const read = async (f: string, n: number): Promise<Buffer> => {
    try {
      const fh = await fsp.open(f, 'r');
      try {
        const { size } = await fh.stat();
        const len = Math.min(n, size);
        const buf = Buffer.alloc(len);
        await fh.read(buf, 0, len, size - len);
        return buf;
      } finally {
        await fh.close();
      }
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return Buffer.alloc(0);
      throw e;
    }
  };
  const cur = await read(log, bytes);
  if (cur.length >= bytes) return cur.toString();
  const old = await read(`${log}.1`, bytes - cur.length);
  return Buffer.concat([old, cur]).toString();
}

/** Stream the log: what is there, then (follow) what gets appended, across rotations, until aborted. */
export async function* readLog(log: string, opts: { follow?: boolean; signal?: AbortSignal; pollMs?: number } = {}): AsyncGenerator<Buffer> {
  let offset = 0;
  // What was rotated away comes first.
  try {
    yield await fsp.readFile(`${log}.1`);
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') throw e;
  }
  for (;;) {
    let size = 0;
    try {
      size = (await fsp.stat(log)).size;
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT') throw e;
    }
    if (size < offset) offset = 0; // truncated by a rotation
    if (size > offset) {
      const fh = await fsp.open(log, 'r');
      try {
        while (offset < size) {
          const buf = Buffer.alloc(Math.min(65536, size - offset));
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
          if (bytesRead === 0) break;
          offset += bytesRead;
          yield buf.subarray(0, bytesRead);
        }
      } finally {
        await fh.close();
      }
    }
    if (!opts.follow || opts.signal?.aborted) return;
    await sleep(opts.pollMs ?? 200);
    if (opts.signal?.aborted) return;
  }
}
