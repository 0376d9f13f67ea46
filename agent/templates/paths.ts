// Where templates live on a node. Every name is built from a sha256 checked to be 64 hex digits, so
// nothing a catalog document says can point outside these directories.
import { join } from 'node:path';

export const SHA_RE = /^[0-9a-f]{64}$/;

export interface PullPaths {
  /** <data>/agent/pulls: downloads in progress (.part) and verified tarballs (.tar). */
  dir: string;
  part(sha: string): string;
  partMeta(sha: string): string;
  tar(sha: string): string;
  /** <data>/templates/<sha>: the runtime's unpacked tree. */
  unpacked(sha: string): string;
}

function checked(sha: string): string {
  if (!SHA_RE.test(sha)) throw new Error(`not a sha256: ${JSON.stringify(sha).slice(0, 80)}`);
  return sha;
}

export function pullPaths(dataDir: string): PullPaths {
  const dir = join(dataDir, 'agent', 'pulls');
  return {
    dir,
    part: (sha) => join(dir, `${checked(sha)}.part`),
    partMeta: (sha) => join(dir, `${checked(sha)}.part.json`),
    tar: (sha) => join(dir, `${checked(sha)}.tar`),
    unpacked: (sha) => join(dataDir, 'templates', checked(sha)),
  };
}
