// The REST API and CouchDB session, with the caller's own cookie. Failures become ApiFailure with the
// API's {error, reason, details}; a request that never reached the server is `offline`.
export interface FieldError { path: string; message: string }

export class ApiFailure extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details: FieldError[] = []) {
    super(message);
  }
  get offline(): boolean {
    return this.status === 0;
  }
}

type Hook = (f: ApiFailure) => void;
const hooks: Hook[] = [];
/** Called for every failure (the live module hears of unreachable servers and expired sessions). */
export const onFailure = (fn: Hook) => hooks.push(fn);

export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? { Accept: 'application/json' } : { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    const f = new ApiFailure(0, 'offline', 'The server cannot be reached. Check that it is running and your network is up.');
    hooks.forEach((h) => h(f));
    throw f;
  }
  const text = await res.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const reason = data?.reason || (res.status >= 500 ? `the server failed (HTTP ${res.status})` : `HTTP ${res.status}`);
    const f = new ApiFailure(res.status, data?.error ?? 'http', String(reason), Array.isArray(data?.details) ? data.details : []);
    hooks.forEach((h) => h(f));
    throw f;
  }
  return data as T;
}

export const enc = encodeURIComponent;
export const systemPath = (node: string, name: string) => `/api/nodes/${enc(node)}/systems/${enc(name)}`;

// Row shapes answered by the API (server/fleet/fleet-index.ts).
export interface NodeRow { id: string; db: string; hostname: string | null; heartbeat: string | null; online: boolean; agentVersion: string | null; systems: number; phases: Record<string, number> }
export interface SystemRow {
  node: string; name: string; kind: 'os' | 'app'; template: string; state: 'running' | 'stopped'; labels: Record<string, string>; rev: string;
  phase: string | null; observedRev: string | null; current: boolean; pid: number | null; message: string | null; updated: string | null; conflict: boolean;
}
export interface Session { userCtx: { name: string | null; roles: string[] } }
