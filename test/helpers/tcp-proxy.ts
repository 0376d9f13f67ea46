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
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, port = 0): Promise<TcpProxy> {
  const open = new Set<{ client: net.Socket; upstream: net.Socket }>();
  let server: net.Server | null = null;
  let boundPort = port;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = net.createServer((client) => {
        const upstream = net.connect(targetPort, '127.0.0.1');
        const pair = { client, upstream };
        open.add(pair);
        client.pipe(upstream);
        upstream.pipe(client);
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
      for (const { client, upstream } of open) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
        frozen.push(client, upstream);
      }
      open.clear(); // frozen sockets stay open (that is the stall) until close()
    },
    async close() {
      await proxy.down();
      for (const s of frozen) s.destroy();
    },
  };
  return proxy;
}
