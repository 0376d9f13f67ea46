// Templates on a node, wired for the agent: the live catalog follower, the resumable puller, the gate
// (host built in, enabled, pulled yet?) and the collector of unused templates, run after passes.
import { adoptCatalogTarballs } from './adopt.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TemplateDoc } from '../../ddocs/schemas/types.ts';
import type { DesiredSystem } from '../model/types.ts';
import { writeAtomic } from '../runtime/paths.ts';
import { collectTemplates } from './collect.ts';
import { diskReport, type DiskReport } from './disk.ts';
import { TemplateFollower } from './follow.ts';
import { gateTemplate, type Gate } from './gate.ts';
import { TemplatePuller, type PullProgress } from './pull.ts';

export { HOST_TEMPLATE } from './gate.ts';

export interface NodeTemplatesOptions {
  dataDir: string;
  catalog: PouchDB.Database;
  catalogUrl: () => string;
  auth: { username: string; password: string };
  hostAllowed: boolean;
  /** How long an unused template stays on disk (default 1 hour). */
  graceMs?: number;
  reserveBytes?: number;
  /** Ask the reconciler for a pass (a pull finished or moved on). */
  requestPass: () => void;
  log: (msg: string) => void;
}

export interface TemplatesStatus {
  follow: { state: string; lastError: string | null; received: number };
  pulling: PullProgress | null;
  errors: Record<string, { code: string; message: string }>;
  pulled: number;
  resumed: number;
  hostTemplate: boolean;
  disk: DiskReport | null;
}

export class NodeTemplates {
  readonly puller: TemplatePuller;
  readonly follower: TemplateFollower;
  private readonly gcFile: string;
  private readonly unusedSince: Map<string, number>;
  private lastSweep = 0;

  constructor(private readonly o: NodeTemplatesOptions) {
    this.puller = new TemplatePuller({ dataDir: o.dataDir, catalogUrl: o.catalogUrl, auth: o.auth, reserveBytes: o.reserveBytes, onChange: o.requestPass, log: o.log });
    this.follower = new TemplateFollower({ catalog: o.catalog, catalogUrl: o.catalogUrl, auth: o.auth, log: o.log, onAttachments: (m) => this.puller.want(m), onAnswered: o.requestPass });
    this.gcFile = join(o.dataDir, 'agent', 'template-gc.json');
    this.unusedSince = loadUnused(this.gcFile);
  }

  gate = (name: string, doc: TemplateDoc | null): Gate => gateTemplate(name, doc, { hostAllowed: this.o.hostAllowed, pullBlocked: (t) => this.puller.blocked(t), answered: (n) => this.follower.hasAnswered(n) });

  tarballOf = (t: TemplateDoc): string | undefined => this.puller.tarballOf(t);

  /** Tarballs that came inside the local catalog (a bundle): made ready as if pulled; a pass follows. */
  adoptLocal = async (): Promise<void> => {
    if ((await adoptCatalogTarballs(this.o.catalog, this.puller.paths, this.o.log ?? (() => {}))) > 0) this.o.requestPass?.();
  };

  /** The server answers again: retry the feed and failed pulls now, not after their back-off. */
  online(): void {
    this.follower.kick();
    this.puller.kick();
  }

  /** After a pass: sweep unused templates (at most every half grace, at most every minute). */
  afterPass = async (desired: Map<string, DesiredSystem>): Promise<void> => {
    const grace = this.o.graceMs ?? 3_600_000;
    const now = Date.now();
    if (now - this.lastSweep < Math.min(60_000, Math.max(500, grace / 2))) return;
    this.lastSweep = now;
    const wanted = new Set<string>();
    for (const d of desired.values()) if (d.template?.source === 'tar' && d.template.sha256) wanted.add(d.template.sha256);
    const before = JSON.stringify([...this.unusedSince]);
    await collectTemplates({ dataDir: this.o.dataDir, wanted, active: this.puller.active(), graceMs: grace, now, unusedSince: this.unusedSince, log: this.o.log });
    const after = JSON.stringify([...this.unusedSince]);
    if (after !== before) await writeAtomic(this.gcFile, after + '\n', 0o600);
  };

  async status(): Promise<TemplatesStatus> {
    const r = this.puller.report();
    return {
      follow: { state: this.follower.state, lastError: this.follower.lastError, received: this.follower.received },
      pulling: r.pulling, errors: r.errors, pulled: r.done, resumed: r.resumed,
      hostTemplate: this.o.hostAllowed,
      disk: await diskReport(this.o.dataDir).catch(() => null),
    };
  }

  async stop(): Promise<void> {
    await this.follower.stop();
    await this.puller.stop();
  }
}

function loadUnused(file: string): Map<string, number> {
  try {
    const rows = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (Array.isArray(rows)) return new Map(rows.filter((r): r is [string, number] => Array.isArray(r) && typeof r[0] === 'string' && typeof r[1] === 'number'));
  } catch {
    // none yet, or unreadable: every template starts its grace afresh
  }
  return new Map();
}
