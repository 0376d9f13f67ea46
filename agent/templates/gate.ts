// Which template a system gets on this node, and whether it may start now. `host` is a property of
// every node, not a catalog entry: it is there without any document, allowed when the agent allows it
// (default: when it runs as root; `node:<id>` says `capabilities.hostTemplate`). A catalog document
// `template:host` may describe it or forbid it everywhere (`enabled: false`), never redefine it (the
// schema keeps its source `host`). A tar template waits for its rootfs.tar to be pulled here.
import type { TemplateDoc } from '../../ddocs/schemas/types.ts';
import type { Blocked } from '../model/types.ts';

export const HOST_TEMPLATE: TemplateDoc = { _id: 'template:host', type: 'template', name: 'host', source: 'host' };

export interface Gate { template: TemplateDoc | null; blocked?: Blocked }

export interface GateOptions {
  hostAllowed: boolean;
  /** Why a tar template's files are not here yet (undefined: they are). */
  pullBlocked: (t: TemplateDoc) => Blocked | undefined;
  /** Whether the catalog has answered for this name (default yes): until then a missing one is only pending. */
  answered?: (name: string) => boolean;
}

export function gateTemplate(name: string, doc: TemplateDoc | null, o: GateOptions): Gate {
  if (name === 'host') {
    const template = doc?.source === 'host' ? doc : HOST_TEMPLATE;
    if (doc?.enabled === false) return { template, blocked: { code: 'TEMPLATE_DISABLED', message: 'the catalog document template:host says enabled: false', stop: true } };
    if (!o.hostAllowed) return { template, blocked: { code: 'TEMPLATE_HOST_DENIED', message: 'this node does not allow the host template (its agent runs with --host-template deny, or not as root)', stop: true } };
    return { template };
  }
  if (!doc) {
    // Just named by a new system: its document is on its way (or the catalog is unreachable), not missing yet.
    if (o.answered && !o.answered(name)) return { template: null, blocked: { code: null, message: `template ${name}: asking the catalog for it` } };
    return { template: null };
  }
  if (doc.enabled === false) return { template: doc, blocked: { code: 'TEMPLATE_DISABLED', message: `the catalog document template:${name} says enabled: false`, stop: true } };
  const blocked = doc.source === 'tar' ? o.pullBlocked(doc) : undefined;
  return blocked ? { template: doc, blocked } : { template: doc };
}
