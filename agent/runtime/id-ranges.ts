// Private host id ranges, one per system (as Incus/LXC give unprivileged containers): container ids
// 0..65535 of system N are host ids base + N*65536 …, so root inside is an unprivileged, unused id
// outside, and two systems never share an owner on disk.
//
// A range is claimed by creating <data>/ids/<slot> with O_EXCL (atomic across processes, no lock),
// holding the system's name; destroy releases it. A slot's file is the only record: state.json copies
// the range for observe, but the claim decides.
import { mkdirSync, openSync, readFileSync, readdirSync, writeSync, closeSync } from 'node:fs';
import { rmForce } from './fs-util.ts';
import { RuntimeError, errnoOf } from './errors.ts';
import type { IdRange } from './oci-config.ts';

/** 2^31: far above the ids of real users and of /etc/subuid ranges that tools hand out from 100000. */
export const DEFAULT_ID_BASE = 2 ** 31;
export const RANGE_SIZE = 65536;
/** Keeps base + slots*size below 2^32 - 1 (uid -1 is "no id"). */
export const MAX_SLOTS = 32767;

export function rangeOf(base: number, slot: number): IdRange {
  return { hostId: base + slot * RANGE_SIZE, size: RANGE_SIZE };
}

function readName(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return null;
    throw e;
  }
}

/** The range of `name`, claimed now if it has none. */
export function claimIdRange(dataDir: string, name: string, base = DEFAULT_ID_BASE): IdRange {
  const dir = `${dataDir}/ids`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const taken = new Set<number>();
  for (const f of readdirSync(dir)) {
    if (!/^\d+$/.test(f)) continue;
    const slot = Number(f);
    if (readName(`${dir}/${f}`) === name) return rangeOf(base, slot);
    taken.add(slot);
  }
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    if (taken.has(slot)) continue;
    let fd: number;
    try {
      fd = openSync(`${dir}/${slot}`, 'wx', 0o600);
    } catch (e) {
      if (errnoOf(e) === 'EEXIST') continue; // another process took it meanwhile
      throw e;
    }
    try {
      writeSync(fd, name);
    } finally {
      closeSync(fd);
    }
    return rangeOf(base, slot);
  }
  throw new RuntimeError('IDS_EXHAUSTED', `no free id range left for system ${name} (${MAX_SLOTS} systems on this node)`);
}

/** Give `name`'s range back (destroy). Files of other names are never touched. */
export function releaseIdRange(dataDir: string, name: string): void {
  const dir = `${dataDir}/ids`;
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return;
  }
  for (const f of files) {
    if (/^\d+$/.test(f) && readName(`${dir}/${f}`) === name) {
      rmForce(`${dir}/${f}`);
    }
  }
}
