// The agent on small devices: every copy of leveldown (PouchDB's LevelDB binding) in node_modules
// carries prebuilt binaries for Android and ARM Linux, so a phone needs no compiler (docs/phone.md).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

test('every leveldown copy has prebuilds for android-arm64, android-arm, linux-arm64 and linux-arm', (t) => {
  const copies = execFileSync('find', ['node_modules', '-type', 'd', '-name', 'leveldown', '-path', '*node_modules/leveldown'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  t.true(copies.length > 0, 'leveldown is installed');
  for (const dir of copies) {
    for (const target of ['android-arm64', 'android-arm', 'linux-arm64', 'linux-arm']) {
      const p = `${dir}/prebuilds/${target}`;
      t.true(existsSync(p) && readdirSync(p).some((f) => f.endsWith('.node')), `${p} has a .node binary`);
    }
  }
});
