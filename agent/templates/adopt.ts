// Tarballs that arrived *inside* the local catalog copy — a bundle carries a tar template's rootfs.tar as
// an attachment (bundle/, issue 16), while live sync stores catalog documents without it and pulls the
// bytes separately (pull.ts). Such an attachment is checked against the document's sha256 and moved to
// where a pull would have put it, so the gate sees the template as here, exactly as after a pull.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { TemplateDoc } from '../../ddocs/schemas/types.ts';
import { SHA_RE, type PullPaths } from './paths.ts';

/** Returns how many tarballs were adopted (0: nothing new). Never throws: a bad one is logged and left. */
export async function adoptCatalogTarballs(catalog: PouchDB.Database, paths: PullPaths, log: (m: string) => void): Promise<number> {
  let adopted = 0;
  let rows: PouchDB.Core.AllDocsResponse<object>['rows'];
  try {
    rows = (await catalog.allDocs({ startkey: 'template:', endkey: 'template:\ufff0', include_docs: true })).rows;
  } catch {
    return 0;
  }
  for (const r of rows) {
    const t = r.doc as unknown as TemplateDoc & { _attachments?: Record<string, { stub?: boolean }> };
    if (!t || t.source !== 'tar' || !t.sha256 || !SHA_RE.test(t.sha256) || !t._attachments?.['rootfs.tar']) continue;
    if (existsSync(paths.tar(t.sha256)) || existsSync(paths.unpacked(t.sha256))) continue;
    try {
      const data = (await catalog.getAttachment(t._id, 'rootfs.tar')) as Buffer;
      const sha = createHash('sha256').update(data).digest('hex');
      if (sha !== t.sha256) {
        log(`template ${t.name}: the rootfs.tar in the local catalog has sha256 ${sha}, not ${t.sha256}: not used`);
        continue;
      }
      mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
      const tmp = `${paths.tar(t.sha256)}.adopt-${process.pid}`;
      writeFileSync(tmp, data, { mode: 0o600 });
      renameSync(tmp, paths.tar(t.sha256));
      adopted++;
      log(`template ${t.name}: rootfs.tar taken from the local catalog (arrived by bundle)`);
    } catch (err) {
      rmSync(`${paths.tar(t.sha256)}.adopt-${process.pid}`, { force: true });
      log(`template ${t.name}: its rootfs.tar in the local catalog could not be used: ${(err as Error).message}`);
    }
  }
  return adopted;
}
