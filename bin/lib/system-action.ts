// start | stop | restart | move of one system through the API: one command per action, one implementation.
// Each is a single write of the system's spec (desired state, restartedAt, or its node); the node's agent acts on it.
import type { Command } from '../command.ts';
import { apiOf, path } from './api.ts';
import { parseCommand, printJson, usageError } from './args.ts';
import { CONNECTION_USAGE } from './connection.ts';

export type SystemAction = 'start' | 'stop' | 'restart' | 'move';

interface ActionResult { id: string; rev: string; unchanged?: boolean; from?: string; to?: string }

const ABOUT: Record<SystemAction, { summary: string; what: string; done: string; same?: string }> = {
  start: { summary: 'set a system\'s desired state to running', what: 'Sets the desired state of system NAME on node N to running; the node\'s agent starts it.', done: 'started (desired state running)', same: 'already running' },
  stop: { summary: 'set a system\'s desired state to stopped', what: 'Sets the desired state of system NAME on node N to stopped; the node\'s agent stops it.\n(`anybios stop NAME --local` stops a system on this machine\'s runtime instead.)', done: 'stopped (desired state stopped)', same: 'already stopped' },
  restart: { summary: 'restart a system (and start it if stopped)', what: 'Asks the node\'s agent to restart system NAME on node N (sets restartedAt; the desired state becomes running).', done: 'restart requested' },
  move: { summary: 'move a system to another node', what: 'Moves system NAME from node FROM to node TO: its spec is created on TO, then deleted on FROM\n(status and volumes stay behind; the agents stop it on FROM and start it on TO).', done: 'moved' },
};

function usageOf(action: SystemAction): string {
  const line = action === 'move' ? 'anybios move NAME --node FROM --to TO [--json]' : `anybios ${action} NAME --node N [--json]`;
  const example = action === 'move' ? 'anybios move web --node edge-1 --to edge-2' : `anybios ${action} web --node edge-1`;
  return `usage: ${line}

${ABOUT[action].what}

options:
  --node N   the node that holds the system${action === 'move' ? ' now\n  --to TO    the node to move it to' : ''}
  --json     print the API's answer

examples:
  ${example}
  ${example} --json

${CONNECTION_USAGE}`;
}

/** The Command for one action (bin/commands/start.ts etc. export it). */
export function systemAction(action: SystemAction): Command {
  const usage = usageOf(action);
  return {
    name: action,
    summary: ABOUT[action].summary,
    usage,
    async run(argv) {
      const { values, positionals } = parseCommand(argv, { node: { type: 'string' }, to: { type: 'string' }, json: { type: 'boolean' } }, usage);
      const [name, ...extra] = positionals;
      if (!name) throw usageError('NAME is missing', usage);
      if (extra.length) throw usageError(`unexpected arguments: ${extra.join(' ')}`, usage);
      if (!values.node) throw usageError('--node is required', usage);
      const { to } = values;
      if (action === 'move' && !to) throw usageError('--to is required', usage);
      if (action !== 'move' && to !== undefined) throw usageError(`--to belongs to \`anybios move\`, not ${action}`, usage);
      const r = await apiOf(values).post<ActionResult>(path('nodes', values.node, 'systems', name, action), action === 'move' ? { to } : undefined);
      if (values.json) printJson(r);
      else if (action === 'move') console.log(`system ${name}: moved from node ${values.node} to node ${to}`);
      else console.log(`system ${name} on node ${values.node}: ${r.unchanged ? ABOUT[action].same : ABOUT[action].done}`);
      return 0;
    },
  };
}
