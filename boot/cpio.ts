// A tiny writer of the cpio "newc" format the kernel unpacks an initramfs from. Ours, rather than
// GNU cpio, so the archive says owner root and carries device nodes (/dev/console) without our build
// needing root, fakeroot or mknod; entries are written in the order given (parents first).
import { gzipSync } from 'node:zlib';

export type CpioEntry =
  | { path: string; type: 'dir'; mode?: number }
  | { path: string; type: 'file'; data: Buffer; mode?: number }
  | { path: string; type: 'symlink'; target: string }
  | { path: string; type: 'char'; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

const hex = (n: number) => n.toString(16).padStart(8, '0');
const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);

function record(ino: number, name: string, mode: number, data: Buffer, rdev: [number, number] = [0, 0]): Buffer {
  const nameBuf = Buffer.from(name + '\0');
  const fields = [ino, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBuf.length, 0].map(hex).join('');
  const header = Buffer.from('070701' + fields, 'ascii');
  return Buffer.concat([header, nameBuf, pad4(header.length + nameBuf.length), data, pad4(data.length)]);
}

/** The archive of `entries` (paths relative, no leading `/`), uncompressed. */
export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    if (!name || name.split('/').includes('..')) throw new Error(`cpio: bad path ${JSON.stringify(e.path)}`);
    switch (e.type) {
      case 'dir': parts.push(record(ino++, name, S_IFDIR | (e.mode ?? 0o755), Buffer.alloc(0))); break;
      case 'file': parts.push(record(ino++, name, S_IFREG | (e.mode ?? 0o644), e.data)); break;
      case 'symlink': parts.push(record(ino++, name, S_IFLNK | 0o777, Buffer.from(e.target))); break;
      case 'char': parts.push(record(ino++, name, S_IFCHR | (e.mode ?? 0o600), Buffer.alloc(0), [e.major, e.minor])); break;
    }
  }
  parts.push(record(0, 'TRAILER!!!', 0, Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/** gzip, which every distribution kernel can unpack an initramfs from. */
export const initramfs = (entries: CpioEntry[]): Buffer => gzipSync(cpioNewc(entries), { level: 6 });
