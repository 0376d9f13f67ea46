// The agent's side of `anybios node rotate` (docs/security.md). The server offers a new password in
// the node user's own `_users` document (`rotation.password`), which only this node and admins can
// read. The agent, still logged in with the old one, saves the new password as `next` (so a crash
// mid-switch loses nothing), changes its own password to it (CouchDB lets a user update its own
// document), and from then on every request carries the new one: the live credentials object is read
// per request (remote.ts), and a request in flight refused for the old password is re-sent. No moment
// passes when neither password works, and the old one stops working as the switch is written.
import http from 'node:http';
import https from 'node:https';
import { oneShotAgent, type LiveAuth } from './remote.ts';

export interface RotationOptions {
  /** The server in use, e.g. https://host:8443 (the CouchDB API is at /db). */
  base: () => string;
  auth: LiveAuth;
  /** Saves the credentials (0600): `next` while a switch is under way, then the new password alone. */
  persist: (c: { password: string; next?: string }) => void;
  /** A password saved as `next` by an earlier run that may have switched already. */
  next?: string;
  log?: (msg: string) => void;
}

interface Answer { status: number; body: Record<string, unknown> | null }

function request(url: string, method: string, auth: LiveAuth, password: string, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.request(url, {
      method, agent: oneShotAgent(url), timeout: 15_000,
      headers: { Accept: 'application/json', Authorization: 'Basic ' + Buffer.from(`${auth.username}:${password}`).toString('base64'), ...(data ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {}) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { if (text.length < 1_000_000) text += d; });
      res.on('end', () => {
        let parsed: Record<string, unknown> | null = null;
        try { parsed = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(data);
  });
}

export class CredentialRotation {
  private next?: string;
  private running = false;

  constructor(private readonly o: RotationOptions) {
    this.next = o.next;
  }

  private userUrl(): string {
    return `${this.o.base()}/db/_users/${encodeURIComponent(`org.couchdb.user:${this.o.auth.username}`)}`;
  }

  private adopt(password: string): void {
    this.o.auth.password = password;
    this.next = undefined;
    this.o.persist({ password });
  }

  /** One look at the user document; switches when a new password is offered. Never throws. */
  async check(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.step();
    } catch (err) {
      this.o.log?.(`credential check failed (offline?): ${(err as Error).message}`);
    } finally {
      this.running = false;
    }
  }

  private async step(): Promise<void> {
    const url = this.userUrl();
    let r = await request(url, 'GET', this.o.auth, this.o.auth.password);
    if (r.status === 401 && this.next) {
      // An earlier run switched and stopped before saving it: the saved next password is ours now.
      r = await request(url, 'GET', this.o.auth, this.next);
      if (r.status === 200) {
        this.adopt(this.next);
        this.o.log?.('credentials: the rotated password saved before a restart is in use');
      }
    }
    if (r.status !== 200 || !r.body) return;
    const offer = (r.body.rotation as { password?: unknown } | undefined)?.password;
    if (typeof offer !== 'string' || offer.length < 8 || offer === this.o.auth.password) return;
    this.next = offer;
    this.o.persist({ password: this.o.auth.password, next: offer });
    const { rotation: _offer, ...doc } = r.body;
    const w = await request(url, 'PUT', this.o.auth, this.o.auth.password, { ...doc, password: offer });
    if (w.status === 201 || w.status === 202) {
      this.adopt(offer);
      this.o.log?.('credentials: switched to the password the server offered (node rotate); the old one no longer works');
    } else this.o.log?.(`credentials: the switch was refused (${w.status} ${JSON.stringify(w.body).slice(0, 200)}); trying again later`);
  }
}
