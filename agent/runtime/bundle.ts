// The OCI bundle of a system run: <sys>/bundle/config.json, written for each start. It holds the spec's
// command and env, so the directory is 0700 and the file 0600 (written atomically, never world-readable).
import { chmodSync, mkdirSync } from 'node:fs';
import type { OciConfig } from './oci-config.ts';
import { readIfExistsSync, writeAtomicSync } from './paths.ts';
import type { SystemPaths } from './state.ts';

/** crun's name of one run of a system (unique per run: a state dir left by a killed crun never clashes). */
export function containerId(name: string, runId: string): string {
  return `anybios-${name}-${runId}`;
}

export function writeBundleSync(p: SystemPaths, config: OciConfig): void {
  mkdirSync(p.bundle, { recursive: true, mode: 0o700 });
  chmodSync(p.bundle, 0o700);
  const text = JSON.stringify(config) + '\n';
  const file = `${p.bundle}/config.json`;
  if (readIfExistsSync(file) !== text) writeAtomicSync(file, text, 0o600);
}
