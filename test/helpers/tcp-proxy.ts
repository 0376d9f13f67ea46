// A TCP proxy on loopback between an agent and its server, to cut the link (down/up) or to freeze the
// connections already open while new ones still work — the way a replication stalls in the wild.
import net from 'node:net';

export interface TcpProxy {
  url: string;
  port: number;
  /** Refuse new connections and drop open ones (the server stays up). */
  down(): Promise<void>;
  up(): Promise<void>;
  /** Stop forwarding on every open connection, silently; new connections work normally. */
  freeze(): void;
  /**
   * Cut any connection once it has carried `bytes` from the server since this call (exactly that many reach the client):
   * a download broken at a known point. null lifts it.
   */
  cutAfter(bytes: number | null): void;
  /** Connections cut by cutAfter so far. */
  readonly cuts: number;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, port = 0): Promise<TcpProxy> {
  const open = new Set<{ client: net.Socket; upstream: net.Socket; frozen: boolean; carried: number }>();
  let server: net.Server | null = null;
  let boundPort = port;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = net.createServer((client) => {
        const upstream = net.connect(targetPort, '127.0.0.1');
        const pair = { client, upstream, frozen: false, carried: 0 };
        open.add(pair);
        client.pipe(upstream);
        upstream.on('data', (chunk: Buffer) => {
          if (pair.frozen) return;
          if (cutAt !== null && pair.carried + chunk.length >= cutAt) {
            const keep = chunk.subarray(0, Math.max(0, cutAt - pair.carried));
            pair.carried += keep.length;
            cuts++;
            // Stop reading the server and let the kept bytes reach the client before both are closed.
            pair.frozen = true;
            upstream.pause();
            client.end(keep, () => end());
            return;
          }
          pair.carried += chunk.length;
          if (!client.write(chunk)) {
            upstream.pause();
            client.once('drain', () => upstream.resume());
          }
        });
        upstream.on('end', () => client.end());
        const end = () => {
          open.delete(pair);
          client.destroy();
          upstream.destroy();
        };
        client.on('error', end).on('close', end);
        upstream.on('error', end).on('close', end);
      });
      server.once('error', reject);
      server.listen(boundPort, '127.0.0.1', () => {
        boundPort = (server!.address() as net.AddressInfo).port;
        resolve();
      });
    });
  const dropAll = () => {
    for (const { client, upstream } of open) {
      client.destroy();
      upstream.destroy();
    }
    open.clear();
  };
  const frozen: net.Socket[] = [];
  let cutAt: number | null = null;
  let cuts = 0;
  await listen();
  const proxy: TcpProxy = {
    get url() { return `http://127.0.0.1:${boundPort}`; },
    get port() { return boundPort; },
    async down() {
      const closing = new Promise<void>((r) => (server ? server.close(() => r()) : r()));
      server = null;
      dropAll(); // close() waits for open connections: drop them first
      await closing;
    },
    async up() {
      if (!server) await listen();
    },
    freeze() {
      for (const pair of open) {
        const { client, upstream } = pair;
        pair.frozen = true;
        client.unpipe(upstream);
        client.pause();
        upstream.pause();
        frozen.push(client, upstream);
      }
      open.clear(); // frozen sockets stay open (that is the stall) until close()
    },
    cutAfter(bytes) {
      cutAt = bytes;
      // Counted from now on, also on open keep-alive connections (which may have carried a lot before).
      for (const pair of open) pair.carried = 0;
    },
    get cuts() { return cuts; },
    async close() {
      await proxy.down();
      for (const s of frozen) s.destroy();
    },
  };
  return proxy;
}
