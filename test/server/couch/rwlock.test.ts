// The per-database readers-writer lock (server/couch/embedded/rwlock.ts) that keeps _changes reads and
// writes apart: readers share, a writer is alone, a waiting writer goes before readers that come later.
import test from 'ava';
import { RwLock } from '../../../server/couch/embedded/rwlock.ts';

const tick = () => new Promise((r) => setTimeout(r, 5));

test('readers share, a writer waits for them and runs alone, later readers wait for the writer', async (t) => {
  const lock = new RwLock();
  const log: string[] = [];
  let active = 0;
  let writerAlone = true;
  const job = (name: string, exclusive: boolean) => (exclusive ? lock.exclusive.bind(lock) : lock.shared.bind(lock))(async () => {
    active++;
    if (exclusive && active !== 1) writerAlone = false;
    log.push(`+${name}`);
    await tick();
    log.push(`-${name}`);
    active--;
    return name;
  });
  const all = [job('r1', false), job('r2', false), job('w1', true), job('r3', false), job('w2', true), job('r4', false)];
  t.deepEqual(await Promise.all(all), ['r1', 'r2', 'w1', 'r3', 'w2', 'r4']);
  t.true(writerAlone);
  // r1 and r2 overlap; w1 starts after both ended; r3 only after w1; w2 after r3; r4 last.
  t.true(log.indexOf('+r2') < log.indexOf('-r1'));
  t.true(log.indexOf('+w1') > log.indexOf('-r1') && log.indexOf('+w1') > log.indexOf('-r2'));
  t.true(log.indexOf('+r3') > log.indexOf('-w1'));
  t.true(log.indexOf('+w2') > log.indexOf('-r3'));
  t.true(log.indexOf('+r4') > log.indexOf('-w2'));
});

test('a failing holder releases the lock', async (t) => {
  const lock = new RwLock();
  await t.throwsAsync(lock.exclusive(async () => { throw new Error('boom'); }), { message: 'boom' });
  await t.throwsAsync(lock.shared(async () => { throw new Error('bang'); }), { message: 'bang' });
  t.is(await lock.exclusive(async () => 'free'), 'free');
});
