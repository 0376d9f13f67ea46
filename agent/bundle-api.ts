// The loopback API's bundle routes: a person with a USB stick and no server in reach updates the
// device and takes its status home.
//   POST /bundle            body: a server bundle (application/octet-stream) → import report (JSON)
//   GET  /bundle[?since=CP] → this node's bundle (statuses with history, heartbeat, device edits)
// An upload is spooled to a private file under <data>/agent (bounded), verified whole (MAC, structure,
// rules) and only then written; a refused or cut upload leaves nothing behind.
import type http from 'node:http';
import { createWriteStream, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BundleError } from '../bundle/errors.ts';
import { exportFromDevice, importOnDevice, type DeviceBundleContext } from '../bundle/device.ts';

export interface BundleApiOptions {
  ctx: DeviceBundleContext;
  /** Where uploads are spooled (the agent's own dir: same disk, mode 0700). */
  spoolDir: string;
  /** Largest upload accepted (default 8 GiB). */
  maxBytes?: number;
  /** After an import wrote something: the agent takes template tarballs the bundle carried. */
  afterImport?: () => Promise<void>;
}

const STATUS: Partial<Record<BundleError['code'], number>> = {
  BUNDLE_REFUSED: 403, BUNDLE_TOO_LARGE: 413, BUNDLE_WRONG_NODE: 409, BUNDLE_WRONG_ORIGIN: 409, BUNDLE_KEY_UNKNOWN: 409,
};

function sendError(res: http.ServerResponse, err: unknown): void {
  const e = err as { code?: string; message?: string; details?: unknown };
  const status = err instanceof BundleError ? STATUS[err.code] ?? 400 : 500;
  if (res.headersSent) {
    res.destroy(); // mid-stream: the reader sees a bundle without its MAC and refuses it
    return;
  }
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ error: err instanceof BundleError ? e.code : 'internal', reason: e.message ?? String(err), ...(e.details ? { details: e.details } : {}) }) + '\n');
}

export async function handleBundleRequest(req: http.IncomingMessage, res: http.ServerResponse, o: BundleApiOptions): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://local');
    if (req.method === 'POST') {
      const max = o.maxBytes ?? 8 * 1024 ** 3;
      if (Number(req.headers['content-length'] ?? 0) > max) throw new BundleError('BUNDLE_TOO_LARGE', `the upload is larger than ${max} bytes`);
      const file = join(o.spoolDir, `upload-${randomBytes(8).toString('hex')}.bundle`);
      try {
        let n = 0;
        const out = createWriteStream(file, { mode: 0o600, flags: 'wx' });
        await pipeline(req, async function* (src) {
          for await (const chunk of src) {
            n += (chunk as Buffer).length;
            if (n > max) throw new BundleError('BUNDLE_TOO_LARGE', `the upload is larger than ${max} bytes`);
            yield chunk as Buffer;
          }
        }, out).catch((err: NodeJS.ErrnoException) => {
          if (err instanceof BundleError) throw err;
          if (err.code === 'ERR_STREAM_PREMATURE_CLOSE' || err.code === 'ECONNRESET' || err.code === 'ECONNABORTED') throw new BundleError('BUNDLE_TRUNCATED', `the upload was cut off after ${n} bytes; nothing was written`);
          throw err;
        });
        const report = await importOnDevice(o.ctx, file);
        await o.afterImport?.().catch(() => {});
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ ok: true, ...report }) + '\n');
      } finally {
        rmSync(file, { force: true });
      }
      return;
    }
    if (req.method === 'GET') {
      const since = url.searchParams.get('since');
      // Headers go out with the first byte, so an error before it is still a proper JSON answer.
      const out = new Writable({
        write(chunk, _enc, cb) {
          // A reader that went away never drains: the export stops instead of waiting for ever.
          if (res.destroyed) return cb(new BundleError('BUNDLE_SOURCE_UNREACHABLE', 'the reader closed the connection'));
          if (!res.headersSent) res.writeHead(200, { 'Content-Type': 'application/vnd.anybios.bundle', 'Content-Disposition': `attachment; filename="${o.ctx.node}-status.bundle"` });
          if (res.write(chunk)) return cb();
          const done = () => { res.off('drain', done); res.off('close', done); cb(); };
          res.on('drain', done);
          res.on('close', done);
        },
      });
      out.on('error', () => {}); // surfaced by the writer's next write
      await exportFromDevice(o.ctx, out, since);
      await new Promise<void>((resolve) => out.end(resolve)); // every queued chunk is in `res` now
      res.end();
      return;
    }
    res.writeHead(405, { 'Content-Type': 'application/json', Allow: 'GET, POST' });
    res.end(JSON.stringify({ error: 'method_not_allowed', reason: 'GET /bundle[?since=CHECKPOINT] exports; POST /bundle imports' }) + '\n');
  } catch (err) {
    sendError(res, err);
  }
}
