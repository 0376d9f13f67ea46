// The attackers of bench/hostile, each run as its own process (so their work does not slow the
// measuring loop). Usage: hostile-attackers.ts slow <port> <n> | node <port> <db> <authorization>.
// They run until standard input ends, then print their counts as one JSON line and exit.
import http from 'node:http';
import net from 'node:net';

const [mode, portText, ...rest] = process.argv.slice(2);
const port = Number(portText);
process.on('unhandledRejection', () => {});
process.on('uncaughtException', () => {});


interface SwarmStats { connects: number; closedByServer: number; statuses: Record<string, number> }

/** `n` anonymous clients that hold connections as long as they can, reconnecting when cut. */
function slowSwarm(n: number): { stats: SwarmStats; stop: () => void } {
  const stats: SwarmStats = { connects: 0, closedByServer: 0, statuses: {} };
  let running = true;
  const socks = new Set<net.Socket>();
  const open = (i: number) => {
    if (!running) return;
    stats.connects++;
    const sock = net.connect(port, '127.0.0.1');
    socks.add(sock);
    let seen = '';
    sock.on('error', () => {});
    sock.on('data', (d) => {
      if (seen) return;
      seen = d.toString('latin1', 0, 12);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(seen);
      const k = m ? m[1] : 'other';
      stats.statuses[k] = (stats.statuses[k] ?? 0) + 1;
    });
    const mode = i % 3;
    sock.on('connect', () => {
      if (mode === 0) sock.write('GET /db/anybios HTTP/1.1\r\nHost: x\r\n');
      else sock.write(`POST ${mode === 1 ? '/api/templates' : '/db/_session'} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n`);
    });
    const drip = setInterval(() => {
      if (sock.destroyed || sock.connecting) return;
      sock.write(mode === 0 ? 'X-Slow: a\r\n' : Buffer.alloc(16 * 1024, 0x20));
    }, 1000);
    sock.on('close', () => {
      clearInterval(drip);
      socks.delete(sock);
      if (running) {
        stats.closedByServer++;
        setTimeout(() => open(i), 200);
      }
    });
  };
  for (let i = 0; i < n; i++) open(i);
  return { stats, stop: () => { running = false; for (const x of socks) x.destroy(); } };
}

/** A node credential sending oversized bodies in four loops, each as fast as it is answered. */
function oversizedNode(db: string, auth: string): { stats: Record<string, number>; stop: () => void } {
  const stats: Record<string, number> = {};
  let running = true;
  const reqs = new Set<http.ClientRequest>();
  const MB = 1_000_000;
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  const send = (path: string, total: number, declared: boolean, head = '', tail = ''): Promise<void> =>
    new Promise((resolve) => {
      const headers: Record<string, string | number> = { Authorization: auth, 'Content-Type': head ? 'application/json' : 'application/octet-stream' };
      if (declared) headers['Content-Length'] = total;
      const req = http.request({ host: '127.0.0.1', port, path, method: 'PUT', headers, agent: false });
      reqs.add(req);
      let done = false;
      const finish = (k: string) => {
        if (done) return;
        done = true;
        stats[k] = (stats[k] ?? 0) + 1;
        reqs.delete(req);
        req.destroy();
        resolve();
      };
      req.on('response', (res) => {
        res.resume();
        finish(String(res.statusCode));
      });
      req.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? 'error'));
      let sent = 0;
      const pump = () => {
        while (!done && sent < total) {
          let part: Buffer = chunk;
          if (sent === 0 && head) part = Buffer.concat([Buffer.from(head), chunk.subarray(head.length)]);
          const left = total - sent;
          if (left <= chunk.length) part = Buffer.concat([part.subarray(0, left - tail.length), Buffer.from(tail)]);
          sent += part.length;
          if (!req.write(part)) return void req.once('drain', pump);
        }
        if (!done) req.end();
      };
      pump();
    });
  const loop = async (fn: () => Promise<void>) => {
    while (running) await fn();
  };
  let n = 0;
  void loop(() => send(`/db/${db}/status:big-${n++}`, 40 * MB, true));
  void loop(() => send(`/db/${db}/status:chunked-${n++}`, 40 * MB, false));
  void loop(() => send(`/db/${db}/status:doc-${n++}`, 12 * MB, true, '{"type":"status","name":"x","phase":"running","updated":"2026-01-01T00:00:00Z","logTail":"', '"}'));
  void loop(async () => {
    await send(`/db/${db}/status:att-${n++}/blob.bin`, 50 * MB, true);
  });
  return { stats, stop: () => { running = false; for (const r of reqs) r.destroy(); } };
}


const running = mode === 'slow' ? slowSwarm(Number(rest[0])) : oversizedNode(rest[0], rest[1]);
process.stdin.on('end', () => {
  running.stop();
  process.stdout.write(JSON.stringify(running.stats) + '\n', () => process.exit(0));
});
process.stdin.resume();
