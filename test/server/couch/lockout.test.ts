// Apache CouchDB's authentication lockout ([chttpd_auth_lockout], on by default: 5 wrong passwords for a
// name from one client address lock that name out there for 5 minutes) behind our forwarding: each
// caller is counted as itself (X-Forwarded-For), so a caller's wrong passwords lock only that caller
// out, never everyone behind this server, and a caller's own X-Forwarded-For changes nothing. A
// throwaway user only: never the admin of a shared CouchDB.
import test from 'ava';
import http from 'node:http';
import type { IncomingMessage } from 'node:http';
import { forwardedFor } from '../../../server/couch/proxy.ts';
import { basic, external, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';

test('forwardedFor appends the caller\'s own address to what it sent', (t) => {
  const req = (xff: string | undefined, addr: string) => ({ headers: xff ? { 'x-forwarded-for': xff } : {}, socket: { remoteAddress: addr } }) as unknown as IncomingMessage;
  t.is(forwardedFor(req(undefined, '127.0.0.2')), '127.0.0.2');
  t.is(forwardedFor(req('10.1.2.3', '::ffff:192.0.2.7')), '10.1.2.3, 192.0.2.7');
  t.is(forwardedFor(req(undefined, '::1')), '::1');
});

/** GET `path` on `base` from the local address `from` (127.0.0.x: all of them reach loopback on Linux). */
function get(base: string, path: string, from: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}${path}`, { localAddress: from, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        if ((res.statusCode ?? 0) >= 500) console.log(`${path}: ${res.statusCode} ${body.slice(0, 500)}`);
        resolve(res.statusCode ?? 0);
      });
    });
    req.on('error', reject);
  });
}

let server: TestServer | undefined;
test.after.always(async () => {
  if (!server) return;
  await server.stop();
  removeDataDir(server.dataDir);
});

test.serial('a caller\'s wrong passwords lock out only that caller, on /db and /api (COUCH_URL)', async (t) => {
  if (!external) return t.pass('the lockout is Apache CouchDB\'s: COUCH_URL only');
  server = await startServer();
  const name = uniq('lockout');
  const password = 'lockout-password-1';
  const users = server.admin.use('_users');
  const created = await users.insert({ _id: `org.couchdb.user:${name}`, type: 'user', name, roles: ['operator'], password } as never);
  t.teardown(() => users.destroy(`org.couchdb.user:${name}`, created.rev).then(() => {}, () => {}));
  const good = { Authorization: basic(name, password) };
  const bad = { Authorization: basic(name, 'not-the-password') };
  const db = server.couchUrl;
  const mallory = '127.0.0.2';
  for (let i = 0; i < 5; i++) t.is(await get(db, '/_session', mallory, bad), 401, `wrong password ${i + 1}`);
  t.is(await get(db, '/_session', mallory, good), 403, 'locked out where the wrong passwords came from');
  t.is(await get(db, '/_session', mallory, { ...good, 'X-Forwarded-For': '10.9.9.9' }), 403, 'a caller\'s own X-Forwarded-For does not unlock it');
  t.is(await get(db, '/_session', '127.0.0.1', good), 200, 'another caller is not locked out');
  t.is(await get(server.url, '/api/nodes', mallory, good), 403, '/api: locked out there too');
  t.is(await get(server.url, '/api/nodes', '127.0.0.1', good), 200, '/api: another caller is not locked out');
});
