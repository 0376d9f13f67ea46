// `anybios ls [systems|nodes|templates|volumes]`: fleet listings from the server's index, as tables or JSON.
import type { Command } from '../command.ts';
import { apiOf, path } from '../lib/api.ts';
import { kindOf, parseCommand, printJson, usageError } from '../lib/args.ts';
import { CONNECTION_USAGE } from '../lib/connection.ts';
import { ago, clip, table, type Cell } from '../lib/table.ts';

const usage = `usage: anybios ls [systems|nodes|templates|volumes] [options]

Lists what the fleet holds (default: systems).
  systems     NODE NAME KIND STATE PHASE CURRENT PID TEMPLATE across every node you may read
  nodes       ID ONLINE HEARTBEAT SYSTEMS PHASES
  templates   NAME SOURCE DESCRIPTION (the catalog)
  volumes     NAME DESCRIPTION of one node (needs --node)

options:
  --node N       only node N (systems, nodes; required for volumes)
  --phase P      systems whose observed phase is P (pending, materializing, running, stopped, failed, unknown)
  --kind K       systems of kind K (os, app)
  --state S      systems whose desired state is S (running, stopped)
  --label K=V    systems with label K equal to V (K alone: with label K)
  --json         print the API's rows as JSON (for scripts)

examples:
  anybios ls
  anybios ls systems --node edge-1 --phase failed
  anybios ls nodes --json
  anybios ls volumes --node edge-1

${CONNECTION_USAGE}`;

const WHAT = ['system', 'node', 'template', 'volume'] as const;

interface SystemRow { node: string; name: string; kind: string; template: string; state: string; phase: string | null; current: boolean; pid: number | null; conflict: boolean }
interface NodeRow { id: string; online: boolean; heartbeat: string | null; systems: number; phases: Record<string, number> }
interface NamedDoc { name: string; source?: string; description?: string }

const phaseCell = (r: SystemRow) => (r.phase ?? '-') + (r.conflict ? ' (conflict)' : '');

export const command: Command = {
  name: 'ls',
  summary: 'list systems, nodes, templates or volumes',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommand(argv, {
      node: { type: 'string' }, phase: { type: 'string' }, kind: { type: 'string' }, state: { type: 'string' }, label: { type: 'string' }, json: { type: 'boolean' },
    }, usage);
    if (positionals.length > 1) throw usageError(`unexpected arguments: ${positionals.slice(1).join(' ')}`, usage);
    const what = positionals[0] === undefined ? 'system' : kindOf(positionals[0], WHAT);
    if (!what) throw usageError(`cannot list "${positionals[0]}": use systems, nodes, templates or volumes`, usage);
    const filters = (['phase', 'kind', 'state', 'label'] as const).filter((f) => values[f] !== undefined);
    if (what !== 'system' && filters.length) throw usageError(`--${filters[0]} filters systems only`, usage);
    if (what === 'template' && values.node) throw usageError('templates are fleet-wide: --node does not apply', usage);
    if (what === 'volume' && !values.node) throw usageError('volumes live on a node: pass --node NODE', usage);
    const api = apiOf(values);

    let headers: string[];
    let rows: Cell[][];
    let data: unknown[];
    if (what === 'system') {
      const q = new URLSearchParams();
      for (const f of ['node', ...filters] as const) if (values[f] !== undefined) q.set(f, values[f]);
      const list = await api.get<SystemRow[]>(`/systems${q.size ? `?${q}` : ''}`);
      data = list;
      headers = ['NODE', 'NAME', 'KIND', 'STATE', 'PHASE', 'CURRENT', 'PID', 'TEMPLATE'];
      rows = list.map((r) => [r.node, r.name, r.kind, r.state, phaseCell(r), r.phase === null ? null : r.current, r.pid, r.template]);
    } else if (what === 'node') {
      const list = values.node ? [await api.get<NodeRow>(path('nodes', values.node))] : await api.get<NodeRow[]>('/nodes');
      data = list;
      headers = ['ID', 'ONLINE', 'HEARTBEAT', 'SYSTEMS', 'PHASES'];
      rows = list.map((n) => [n.id, n.online, ago(n.heartbeat), n.systems, Object.entries(n.phases).map(([p, c]) => `${p}=${c}`).join(' ')]);
    } else {
      const list = await api.get<NamedDoc[]>(what === 'template' ? '/templates' : path('nodes', values.node!, 'volumes'));
      data = list;
      headers = what === 'template' ? ['NAME', 'SOURCE', 'DESCRIPTION'] : ['NAME', 'DESCRIPTION'];
      rows = list.map((d) => (what === 'template' ? [d.name, d.source, clip(d.description, 60)] : [d.name, clip(d.description, 60)]));
    }
    if (values.json) printJson(data);
    else if (!rows.length) console.log(`no ${what}s${values.node && what !== 'node' ? ` on node ${values.node}` : ''}`);
    else console.log(table(headers, rows));
    return 0;
  },
};
