// HTTP over a raw TCP socket, for what fetch cannot do: send part of a body and wait, trickle bytes,
// hold a connection open half-written, and see exactly when the server answers or closes.
import net from 'node:net';

export interface RawResponse { status: number; head: string; body: string; json: any }

export function parseResponse(text: string): RawResponse {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  const split = text.indexOf('\r\n\r\n');
  const head = split < 0 ? text : text.slice(0, split);
  let body = split < 0 ? '' : text.slice(split + 4);
  if (/\r\ntransfer-encoding: chunked/i.test(head)) body = body.replace(/(^|\r\n)[0-9a-f]+\r\n/gi, '$1').replace(/\r\n/g, '');
  let json: any;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: m ? Number(m[1]) : 0, head, body, json };
}

function complete(text: string): boolean {
  const split = text.indexOf('\r\n\r\n');
  if (split < 0) return false;
  const cl = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, split));
  return cl ? Buffer.byteLength(text.slice(split + 4), 'latin1') >= Number(cl[1]) : false;
}

/** An open connection: write to it, and await the first complete response (or the close). */
export class RawConn {
  readonly sock: net.Socket;
  private text = '';
  closed = false;
  /** Bytes this side managed to write before the server closed. */
  written = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(port: number) {
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.on('error', () => {});
    this.sock.on('data', (d) => {
      this.text += d.toString('latin1');
      this.wake();
    });
    this.sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  connected(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.sock.connecting) return resolve();
      this.sock.once('connect', () => resolve());
      this.sock.once('error', reject);
    });
  }

  write(data: string | Buffer): boolean {
    if (this.closed || this.sock.destroyed) return false;
    this.written += Buffer.byteLength(data);
    this.sock.write(data);
    return true;
  }

  /** The response once it is complete (or the connection closed); null when neither happens in `ms`. */
  async response(ms = 10_000): Promise<RawResponse | null> {
    const end = Date.now() + ms;
    while (!complete(this.text) && !this.closed) {
      const left = end - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
    return this.text ? parseResponse(this.text) : null;
  }

  /** Resolves true once the server closed the connection, false after `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (!this.closed) {
      const left = end - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
    return true;
  }

  destroy(): void {
    this.sock.destroy();
  }
}

export const requestHead = (method: string, path: string, headers: Record<string, string | number>) =>
  `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
