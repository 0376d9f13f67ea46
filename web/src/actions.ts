// start | stop | restart | delete of a system, each behind a confirmation that names it, and saying
// afterwards what will happen — in particular when its node is offline and the change waits.
import { api, ApiFailure, systemPath } from './api.ts';
import { announce, confirmDialog } from './dom.ts';
import { nodeOf } from './store.ts';

export type Action = 'start' | 'stop' | 'restart';

export function actionWords(state: 'running' | 'stopped', action: Action): { title: string; text: string; button: string } {
  return action === 'stop'
    ? { title: 'Stop system', text: 'Its processes are asked to exit, then killed after the grace period. Its files stay.', button: 'Stop' }
    : action === 'start'
      ? { title: 'Start system', text: 'It is started from its template and its own layer.', button: 'Start' }
      : state === 'stopped'
        ? { title: 'Start system', text: 'It is stopped now, so restart will start it.', button: 'Start' }
        : { title: 'Restart system', text: 'Its processes are stopped and it is started again.', button: 'Restart' };
}

/** Why a change would only wait: the node is offline or never connected (null when it will act now). */
export function pendingReason(node: string): string | null {
  const n = nodeOf(node);
  if (!n || !n.heartbeat) return `node ${node} has never connected: the change is saved and waits until its agent first connects`;
  if (!n.online) return `node ${node} is offline: the change is saved and applied when it reconnects`;
  return null;
}

export async function systemAction(node: string, name: string, state: 'running' | 'stopped', action: Action): Promise<boolean> {
  const w = actionWords(state, action);
  const pending = pendingReason(node);
  const ok = await confirmDialog(`${w.title} ${name}?`, `${w.title} ${name} on node ${node}? ${w.text}${pending ? ` Note: ${pending}.` : ''}`, `${w.button} ${name}`, action === 'stop');
  if (!ok) return false;
  try {
    const r = await api<{ unchanged?: boolean }>('POST', `${systemPath(node, name)}/${action}`);
    if (r.unchanged) announce(`${name} is already ${action === 'start' ? 'running' : 'stopped'} as wanted.`);
    else announce(pending ? `Saved. ${pending[0].toUpperCase()}${pending.slice(1)}.` : `${w.button}: asked node ${node} to ${w.button.toLowerCase()} ${name}.`);
    return true;
  } catch (err) {
    announce(`Could not ${action} ${name}: ${(err as ApiFailure).message}`, 'error');
    return false;
  }
}

export async function deleteSystem(node: string, name: string, rev?: string): Promise<boolean> {
  const ok = await confirmDialog(`Delete system ${name}?`, `Delete system ${name} on node ${node}? Its spec is removed; the node stops it and removes its layer. This cannot be undone from here (the revision history keeps the old spec until compaction).`, `Delete ${name}`, true);
  if (!ok) return false;
  try {
    await api('DELETE', `${systemPath(node, name)}${rev ? `?rev=${encodeURIComponent(rev)}` : ''}`);
    announce(`Deleted system ${name} on node ${node}.`);
    return true;
  } catch (err) {
    announce(`Could not delete ${name}: ${(err as ApiFailure).message}`, 'error');
    return false;
  }
}
