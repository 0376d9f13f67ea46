// The web console in a real browser (Debian's Chromium through playwright-core) against a real server
// process: log in, create a system from the schema form (an invalid value shows its error at the field,
// the same words as the design document's rules), stop it behind a confirmation, hostile document text
// stays text, the phone viewport has no horizontal overflow, the offline banner appears when the server
// stops. The node has no agent, so its systems are explained as "node never connected".
import test from 'ava';
import { createHash } from 'node:crypto';
import type { Page } from 'playwright-core';
import { addNode } from '../../server/nodes.ts';
import { docErrors } from '../../ddocs/validate.ts';
import { basic, call, removeDataDir, startServer, type TestServer } from '../helpers/server.ts';
import { CHROMIUM, axeViolations, haveChromium, launchBrowser, type TestBrowser } from '../helpers/browser.ts';
import { eventually } from '../helpers/wait.ts';

const NODE = 'edge1';
let server: TestServer | undefined;
let browser: TestBrowser | undefined;
let remote: TestServer | undefined; // a second site, for the site link test
const consoleErrors: string[] = [];

test.before(async () => {
  if (!haveChromium()) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (CI does it in .ci/run)`);
  server = await startServer({ embedded: true });
  await addNode(server.admin, NODE);
  await server.admin.use('_users').insert({ _id: 'org.couchdb.user:op', type: 'user', name: 'op', roles: ['operator'], password: 'operator-pass' } as never);
  browser = await launchBrowser();
});

test.after.always(async () => {
  await browser?.close();
  await remote?.stop();
  if (remote) removeDataDir(remote.dataDir);
  await server?.stop();
  if (server) removeDataDir(server.dataDir);
});

async function newPage(viewport?: { width: number; height: number }): Promise<Page> {
  await browser!.context.clearCookies(); // each test logs in afresh
  const page = await browser!.context.newPage();
  if (viewport) await page.setViewportSize(viewport);
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  return page;
}

async function logIn(page: Page, user = 'admin', password = server!.adminPassword): Promise<void> {
  await page.goto(server!.url + '/');
  await page.getByLabel('User').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('navigation', { name: 'Sections' }).waitFor();
}

/** A fresh page, logged in as the admin. */
async function loggedInPage(): Promise<Page> {
  const page = await newPage();
  await logIn(page);
  return page;
}

/** A logged-in page showing system `name` on NODE. */
async function systemPage(name: string): Promise<Page> {
  const page = await loggedInPage();
  await page.goto(`${server!.url}/#/nodes/${NODE}/systems/${name}`);
  return page;
}

const spec = async (name: string) => (await call(server!.url, `/api/nodes/${NODE}/systems/${name}`, { auth: server!.adminAuth })).body;

test.serial('the console is served bundled, with a strict CSP, a favicon and no sources', async (t) => {
  const js = await fetch(server!.url + '/app.js', { headers: { 'Accept-Encoding': 'gzip' } });
  t.is(js.status, 200);
  t.regex(js.headers.get('content-type') ?? '', /javascript/);
  const csp = (await fetch(server!.url + '/')).headers.get('content-security-policy') ?? '';
  t.regex(csp, /script-src 'self'/);
  t.notRegex(csp, /unsafe-inline|unsafe-eval/);
  t.is((await fetch(server!.url + '/favicon.svg')).status, 200);
  t.is((await fetch(server!.url + '/src/main.ts')).status, 404);
  t.is((await fetch(server!.url + '/tsconfig.json')).status, 404);
});

test.serial('log in, create a system from the form: an invalid value is shown at its field, then it saves', async (t) => {
  const page = await loggedInPage();
  await page.getByRole('link', { name: 'New system' }).click();
  await page.getByRole('heading', { name: 'New system' }).waitFor();
  await page.getByLabel('node *').selectOption(NODE);
  const name = page.getByLabel('name *');
  await name.fill('Web 1');
  await page.getByLabel('memory').fill('1000');
  await page.getByRole('button', { name: 'Create system' }).click();
  // The same words the design document's rules give for these values.
  const expected = docErrors({ _id: 'system:Web 1', type: 'system', name: 'Web 1', kind: 'app', template: 'host', state: 'running', command: ['x'], resources: { memory: 1000 } });
  const nameMsg = expected.find((e) => e.path === '/name')!.message;
  const memMsg = expected.find((e) => e.path === '/resources/memory')!.message;
  await t.notThrowsAsync(page.locator('.field[data-path="/name"] .field-error', { hasText: nameMsg }).waitFor());
  t.is(await page.locator('.field[data-path="/name"] .field-error').textContent(), nameMsg, 'only the name\'s own message (not the derived _id\'s)');
  t.is(await name.getAttribute('aria-invalid'), 'true');
  t.is(await page.locator('.field[data-path="/resources/memory"] .field-error').textContent(), memMsg);
  t.is((await call(server!.url, `/api/nodes/${NODE}/systems`, { auth: server!.adminAuth })).body.length, 0, 'nothing was saved');

  await name.fill('web1');
  await page.getByLabel('memory').fill('');
  await page.getByRole('button', { name: 'Create system' }).click();
  await page.getByRole('heading', { name: 'web1', level: 1 }).waitFor();
  t.regex(page.url(), /#\/nodes\/edge1\/systems\/web1$/);
  const saved = await spec('web1');
  t.is(saved.spec.state, 'running');
  t.is(saved.spec.kind, 'app');
  // No agent ever connected on this node: the page says so instead of a bare "unknown".
  await t.notThrowsAsync(page.getByText(/node never connected/).first().waitFor());
  t.deepEqual(await axeViolations(page), [], 'system page at 1280×800');
  await page.goto(`${server!.url}/#/`);
  await page.getByRole('link', { name: 'web1' }).waitFor();
  t.deepEqual(await axeViolations(page), [], 'fleet page at 1280×800');
  await page.close();
});

test.serial('stop asks for a confirmation naming the system; cancel changes nothing, confirm stops it', async (t) => {
  const page = await systemPage('web1');
  await page.getByRole('button', { name: 'Stop web1' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  t.regex((await dialog.textContent()) ?? '', /web1 on node edge1/);
  t.regex((await dialog.textContent()) ?? '', /never connected/, 'it says the change will wait for the node');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  t.is((await spec('web1')).spec.state, 'running');

  await page.getByRole('button', { name: 'Stop web1' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Stop web1' }).click();
  await eventually('the spec stopped', () => spec('web1'), (s) => s.spec.state === 'stopped');
  // The page follows by itself (SSE): the button turns into Start.
  await t.notThrowsAsync(page.getByRole('button', { name: 'Start web1' }).waitFor());
  t.pass();
  await page.close();
});

test.serial('a node whose heartbeat is old is offline, and a change waiting for it says so', async (t) => {
  await addNode(server!.admin, 'quiet');
  const old = new Date(Date.now() - 10 * 60_000).toISOString();
  const db = server!.admin.use('anybios-node-quiet');
  await db.insert({ _id: 'node:quiet', type: 'node', name: 'quiet', heartbeat: old, agentVersion: '9.9.9' } as never);
  const made = await call(server!.url, '/api/nodes/quiet/systems', { method: 'POST', auth: server!.adminAuth, json: { name: 'q1', kind: 'app', template: 'host', state: 'running', command: ['/bin/true'] } });
  t.is(made.status, 201);
  const page = await loggedInPage();
  const card = page.locator('.node-card', { hasText: 'quiet' });
  await card.getByText('offline', { exact: true }).waitFor();
  t.regex((await card.textContent()) ?? '', /heartbeat 10 min ago.*agent 9\.9\.9/);
  const row = page.locator('tr[data-node="quiet"][data-name="q1"]');
  await row.getByText(/change pending \(wants running\): node offline/).waitFor();
  await row.getByRole('button', { name: 'Stop q1 on quiet' }).click();
  t.regex((await page.getByRole('dialog').textContent()) ?? '', /node quiet is offline: the change is saved and applied when it reconnects/);
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  await page.close();
});

test.serial('keyboard: a row action opens its confirmation with Enter, Escape cancels, focus stays on the row', async (t) => {
  const page = await loggedInPage();
  const start = page.getByRole('button', { name: 'Start web1 on edge1', exact: true });
  await start.focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Start system web1?' });
  await dialog.waitFor();
  t.true(await dialog.getByRole('button', { name: 'Cancel' }).evaluate((b) => b === document.activeElement), 'focus starts on Cancel');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  t.is((await spec('web1')).spec.state, 'stopped');
  t.true(await start.evaluate((b) => b === document.activeElement), 'focus is back on the button');
  await page.close();
});

test.serial('status and log tail follow live; the JSON view edits the same spec', async (t) => {
  const page = await systemPage('web1');
  await page.getByRole('heading', { name: 'web1', level: 1 }).waitFor();
  // What the node's agent would write (here as admin): the page shows it without a reload.
  const db = server!.admin.use(`anybios-node-${NODE}`);
  const current = (await spec('web1')).spec;
  await db.insert({ _id: 'status:web1', type: 'status', name: 'web1', phase: 'stopped', observedRev: current._rev, exitCode: 3, restarts: 2, diskUsed: 5 * 1024 * 1024, logTail: 'line one\nline two from the agent\n', updated: new Date().toISOString() } as never);
  await page.getByRole('log').getByText('line two from the agent').waitFor();
  t.is(await page.locator('.status-grid dt:text("Exit code") + dd').textContent(), '3');
  t.is(await page.locator('.status-grid dt:text("Disk used") + dd').textContent(), '5.0 MiB');

  await page.getByRole('button', { name: 'JSON' }).click();
  const json = page.getByLabel('system web1 as JSON');
  const doc = JSON.parse(await json.inputValue());
  t.is(doc.name, 'web1');
  await json.fill(JSON.stringify({ ...doc, description: 'edited as JSON' }, null, 2));
  await page.getByRole('button', { name: 'Save changes' }).click();
  await eventually('the JSON edit saved', () => spec('web1'), (s) => s.spec.description === 'edited as JSON');
  t.pass();
  await page.close();
});

test.serial('unsaved edits survive a change made elsewhere; the page says so and saving is refused, not lost', async (t) => {
  const page = await systemPage('web1');
  const desc = page.getByLabel('description');
  await desc.fill('typed here, not saved');
  const cur = (await spec('web1')).spec;
  const r = await call(server!.url, `/api/nodes/${NODE}/systems/web1`, { method: 'PUT', auth: server!.adminAuth, json: { ...cur, labels: { from: 'elsewhere' } } });
  t.is(r.status, 200);
  await page.getByText(/was changed elsewhere .* while you edit it/).waitFor();
  t.is(await desc.inputValue(), 'typed here, not saved');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('.form-errors', { hasText: /changed meanwhile/ }).waitFor();
  // Chromium logs every refused request; this 409 is the one we asked for.
  const refused = consoleErrors.findIndex((e) => /status of 409/.test(e));
  t.true(refused >= 0);
  consoleErrors.splice(refused, 1);
  t.is((await spec('web1')).spec.labels.from, 'elsewhere', 'the other change was not overwritten');
  await page.getByRole('button', { name: 'Load the new version (drops your edits)' }).click();
  await eventually('the form shows the new version', () => page.getByLabel('labels').inputValue(), (v) => v === 'from=elsewhere');
  t.not(await desc.inputValue(), 'typed here, not saved');
  await page.close();
});

test.serial('history lists revisions with their changes and restores one; clone and delete a system', async (t) => {
  const page = await systemPage('web1');
  await page.getByRole('button', { name: 'Show revisions' }).click();
  const hist = page.locator('.history');
  await hist.locator('li').first().waitFor();
  // The JSON edit before: its change is listed, and the revision before it can come back.
  await hist.getByText('"edited as JSON"').first().waitFor();
  const before = (await spec('web1')).spec;
  const restoreButtons = hist.getByRole('button', { name: /^Restore revision / });
  t.true((await restoreButtons.count()) >= 2);
  const label = (await restoreButtons.first().getAttribute('aria-label'))!;
  const rev = label.replace('Restore revision ', '');
  await restoreButtons.first().click();
  await page.getByRole('dialog').getByRole('button', { name: 'Restore web1' }).click();
  const after = await eventually('restored', () => spec('web1'), (s) => s.spec._rev !== before._rev);
  const old = (await call(server!.url, `/db/anybios-node-${NODE}/system:web1?rev=${rev}`, { auth: server!.adminAuth })).body;
  t.is(after.spec.description, old.description);
  t.is(after.spec.state, old.state);

  await page.getByRole('link', { name: 'Clone web1' }).click();
  await page.getByRole('heading', { name: 'Clone web1' }).waitFor();
  await eventually('the clone is filled in', () => page.getByLabel('name *').inputValue(), (v) => v === 'web1-copy');
  await page.getByRole('button', { name: 'Create system' }).click();
  await page.getByRole('heading', { name: 'web1-copy', level: 1 }).waitFor();
  const copy = (await spec('web1-copy')).spec;
  t.deepEqual(copy.command, after.spec.command);
  await page.getByRole('button', { name: 'Delete web1-copy' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete web1-copy' }).click();
  await page.getByRole('heading', { name: 'Systems' }).waitFor();
  t.is((await call(server!.url, `/api/nodes/${NODE}/systems/web1-copy`, { auth: server!.adminAuth })).status, 404);
  await page.close();
});

test.serial('text from documents stays text (a hostile description cannot become markup)', async (t) => {
  const evil = '<img src=x id=pwn onerror="document.title=1"><b id=bold>x</b>';
  const r = await call(server!.url, `/api/nodes/${NODE}/systems`, { method: 'POST', auth: server!.adminAuth, json: { name: 'evil', kind: 'app', template: 'host', state: 'stopped', command: [evil], description: evil, labels: { k: evil.slice(0, 200) } } });
  t.is(r.status, 201);
  const page = await loggedInPage();
  await page.getByRole('link', { name: 'evil' }).waitFor();
  await page.goto(`${server!.url}/#/nodes/${NODE}/systems/evil`);
  await page.getByText(evil).first().waitFor();
  t.is(await page.locator('#pwn, #bold').count(), 0);
  t.not(await page.title(), '1');
  await page.close();
});

test.serial('a conflict shows its versions side by side; keeping the other one resolves it', async (t) => {
  // Two leaves, as two sites editing apart would leave them: written with new_edits=false.
  const db = server!.admin.use(`anybios-node-${NODE}`);
  const cur = (await db.get('system:web1')) as unknown as Record<string, unknown>;
  const gen = Number.parseInt(String(cur._rev), 10);
  const other = { ...cur, _rev: `${gen + 1}-${'f'.repeat(32)}`, description: 'edited at site B', _revisions: { start: gen + 1, ids: ['f'.repeat(32), String(cur._rev).split('-')[1]] } };
  const mine = { ...cur, _rev: `${gen + 1}-${'0'.repeat(32)}`, description: 'edited at site A', _revisions: { start: gen + 1, ids: ['0'.repeat(32), String(cur._rev).split('-')[1]] } };
  await db.bulk({ docs: [other, mine] as never[], new_edits: false });
  const page = await systemPage('web1');
  const box = page.locator('section.conflicts');
  await box.getByRole('heading', { name: 'Conflict' }).waitFor();
  await box.getByText('edited at site A').first().waitFor();
  t.is(await box.locator('.leaf').count(), 2);
  const winnerRev = (await spec('web1')).spec._rev as string;
  const loser = winnerRev.endsWith('f'.repeat(32)) ? mine._rev : other._rev;
  await box.getByRole('button', { name: `Keep version ${loser} of web1` }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Resolve web1' }).click();
  const after = await eventually('one leaf left', () => spec('web1'), (s) => !s.spec._conflicts?.length);
  t.is(after.spec.description, loser === mine._rev ? 'edited at site A' : 'edited at site B');
  await box.waitFor({ state: 'hidden' });
  await page.close();
});

test.serial('a user without write rights sees the systems read only', async (t) => {
  const users = server!.admin.use('_users');
  await users.insert({ _id: 'org.couchdb.user:viewer', type: 'user', name: 'viewer', roles: [], password: 'viewer-pass' } as never);
  const sec = (await server!.admin.request({ db: `anybios-node-${NODE}`, path: '_security' })) as { members: { names: string[] } };
  sec.members.names.push('viewer');
  await server!.admin.request({ db: `anybios-node-${NODE}`, path: '_security', method: 'PUT', body: sec });
  const page = await newPage();
  await page.goto(server!.url + '/');
  await page.getByLabel('User').fill('viewer');
  await page.getByLabel('Password').fill('viewer-pass');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('link', { name: 'web1' }).waitFor();
  t.is(await page.getByRole('link', { name: 'New system' }).count(), 0);
  t.is(await page.locator('tbody button[data-act]').count(), 0);
  t.true((await page.getByText('read only').count()) > 0);
  await page.goto(`${server!.url}/#/nodes/${NODE}/systems/web1`);
  await page.getByText('Read only: you may not change systems on this node.').waitFor();
  t.is(await page.getByRole('button', { name: /^(Stop|Start|Delete) web1$/ }).count(), 0);
  await page.close();
});

test.serial('a tar template: the rootfs is uploaded as its attachment, with its sha256, and listed', async (t) => {
  const tar = Buffer.alloc(64 * 1024 + 512, 7); // contents do not matter to the catalog; the digest does
  const sha = createHash('sha256').update(tar).digest('hex');
  const page = await loggedInPage();
  await page.getByRole('link', { name: 'Templates' }).click();
  await page.getByRole('heading', { name: 'Add a template' }).waitFor();
  await page.getByLabel('name *').fill('tiny');
  await page.getByLabel('source *').selectOption('tar');
  await page.getByLabel('rootfs (tar)').setInputFiles({ name: 'tiny.tar', mimeType: 'application/x-tar', buffer: tar });
  await eventually('the browser hashed the file', () => page.getByLabel('sha256 (tar)').inputValue(), (v) => v === sha);
  await page.getByRole('button', { name: 'Add template' }).click();
  await page.getByRole('cell', { name: /rootfs\.tar, 64\.5 KiB/ }).waitFor();
  const doc = (await call(server!.url, '/db/anybios/template:tiny', { auth: server!.adminAuth })).body;
  t.is(doc.sha256, sha);
  t.is(doc._attachments['rootfs.tar'].length, tar.length);
  const back = await fetch(`${server!.url}/db/anybios/template:tiny/rootfs.tar`, { headers: { Authorization: server!.adminAuth } });
  t.is(createHash('sha256').update(Buffer.from(await back.arrayBuffer())).digest('hex'), sha);
  await page.close();
});

test.serial('volumes: add one on a node (a bad name is refused at its field), then delete it', async (t) => {
  const page = await loggedInPage();
  await page.getByRole('link', { name: 'Volumes' }).click();
  await page.getByRole('heading', { name: 'Volumes' }).waitFor();
  await page.getByLabel('Node', { exact: true }).selectOption(NODE);
  await page.getByLabel('name *').fill('Data!');
  await page.getByRole('button', { name: 'Add volume' }).click();
  await page.locator('.field[data-path="/name"] .field-error', { hasText: 'must be a name' }).waitFor();
  await page.getByLabel('name *').fill('data');
  await page.getByRole('button', { name: 'Add volume' }).click();
  await page.getByRole('rowheader', { name: 'data' }).waitFor();
  t.is((await call(server!.url, `/api/nodes/${NODE}/volumes/data`, { auth: server!.adminAuth })).status, 200);
  await page.getByRole('button', { name: `Delete volume data on ${NODE}` }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete data' }).click();
  await page.getByRole('rowheader', { name: 'data' }).waitFor({ state: 'detached' });
  t.is((await call(server!.url, `/api/nodes/${NODE}/volumes/data`, { auth: server!.adminAuth })).status, 404);
  await page.close();
});

test.serial('site links: link another server from the Sites page, see it up, unlink it', async (t) => {
  remote = await startServer({ embedded: true });
  const page = await loggedInPage();
  await page.getByRole('link', { name: 'Sites' }).click();
  await page.getByLabel('remote URL *').fill(remote.url);
  await page.getByLabel('remote admin user *').fill('admin');
  await page.getByLabel('remote admin password *').fill('not-the-password');
  await page.getByRole('button', { name: 'Link', exact: true }).click();
  await page.locator('form p.error', { hasText: /admin|credentials|password|unauthorized/i }).waitFor();
  const refused = consoleErrors.findIndex((e) => /status of 4\d\d/.test(e)); // the refusal we asked for
  t.true(refused >= 0);
  consoleErrors.splice(refused, 1);
  await page.getByLabel('remote admin password *').fill(remote.adminPassword);
  await page.getByRole('button', { name: 'Link', exact: true }).click();
  const row = page.getByRole('row', { name: new RegExp(remote.url.replace(/[.:/]/g, '\\$&')) });
  await row.waitFor();
  t.is(await page.getByLabel('remote admin password *').inputValue(), '', 'the password is not kept in the form');
  await row.getByText('up', { exact: true }).waitFor({ timeout: 30_000 });
  await row.getByRole('button', { name: /^Unlink / }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Unlink' }).click();
  await row.waitFor({ state: 'detached' });
  t.deepEqual((await call(server!.url, '/api/sites', { auth: server!.adminAuth })).body, []);
  await page.close();
});

test.serial('enrol a node from the Nodes page: its agent config is shown once', async (t) => {
  const page = await loggedInPage();
  await page.getByRole('link', { name: 'Nodes' }).click();
  await page.getByLabel('node id *').fill('edge2');
  await page.getByRole('button', { name: 'Enrol' }).click();
  const config = JSON.parse((await page.getByLabel('Agent config of edge2').textContent()) ?? '{}');
  t.is(config.node, 'edge2');
  t.is(config.server, server!.url);
  const own = await call(server!.url, '/db/anybios-node-edge2', { auth: basic(config.user, config.password) });
  t.is(own.status, 200, 'the config shown works');
  await page.locator('.node-card', { hasText: 'edge2' }).waitFor();
  await page.getByRole('link', { name: 'Fleet' }).click();
  await page.getByRole('link', { name: 'Nodes' }).click();
  await page.getByRole('heading', { name: 'Enrol a node' }).waitFor();
  await page.locator('.node-card', { hasText: 'edge2' }).waitFor();
  t.is(await page.getByLabel('Agent config of edge2').count(), 0, 'shown once only');
  await page.close();
});

test.serial('a phone (390×844) has no horizontal overflow; every button has an accessible name; axe finds no WCAG violation', async (t) => {
  const page = await newPage({ width: 390, height: 844 });
  await logIn(page);
  await page.getByRole('heading', { name: 'Systems' }).waitFor();
  for (const hash of ['#/', `#/nodes/${NODE}/systems/web1`, `#/nodes/${NODE}/systems/evil`, '#/new', '#/templates', '#/volumes', '#/nodes', '#/sites', '#/conflicts']) {
    await page.goto(`${server!.url}/${hash}`);
    await page.waitForTimeout(300);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    t.true(width <= 390, `${hash} is ${width} px wide`);
    const unnamed = await page.evaluate(() => Array.from(document.querySelectorAll('button')).filter((b) => b.offsetParent && !(b.getAttribute('aria-label') || b.textContent?.trim())).length);
    t.is(unnamed, 0, `${hash}: buttons without a name`);
    const small = await page.evaluate(() => Array.from(document.querySelectorAll('main button, main a.button')).filter((b) => (b as HTMLElement).offsetParent && b.getBoundingClientRect().height < 36).map((b) => b.textContent));
    t.deepEqual(small, [], `${hash}: touch targets below 36 px`);
    t.deepEqual(await axeViolations(page), [], `${hash}: axe-core (WCAG 2.1 A/AA)`);
  }
  await page.emulateMedia({ colorScheme: 'dark' });
  for (const hash of ['#/', `#/nodes/${NODE}/systems/web1`]) {
    await page.goto(`${server!.url}/${hash}`);
    await page.waitForTimeout(300);
    t.deepEqual(await axeViolations(page), [], `${hash} in the dark scheme`);
  }
  await page.close();
});

test.serial('log out clears the password; no console errors while the server is up', async (t) => {
  const page = await loggedInPage();
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Log in to anybios' }).waitFor();
  t.is(await page.getByLabel('Password').inputValue(), '');
  t.deepEqual(consoleErrors, []);
  await page.close();
});

test.serial('when the server stops, an offline banner appears and actions are disabled with the reason; it recovers when the server is back', async (t) => {
  const made = await call(server!.url, `/api/nodes/${NODE}/systems`, { method: 'POST', auth: server!.adminAuth, json: { name: 'off1', kind: 'app', template: 'host', state: 'stopped', command: ['/bin/true'] } });
  t.is(made.status, 201);
  const page = await newPage();
  // An operator (a _users user): the embedded server's admin gets a new salt each start, so an admin's
  // session cookie does not outlive a restart (the console then asks to log in again, saying why).
  await logIn(page, 'op', 'operator-pass');
  await page.goto(`${server!.url}/#/nodes/${NODE}/systems/off1`);
  const start = page.getByRole('button', { name: 'Start off1' });
  await start.waitFor();
  t.true(await start.isEnabled());
  await server!.stop();
  const banner = page.locator('#offline');
  await banner.waitFor({ state: 'visible', timeout: 10_000 });
  t.regex((await banner.textContent()) ?? '', /Offline since .*cannot be reached/);
  t.true(await start.isDisabled());
  t.regex((await start.getAttribute('title')) ?? '', /Offline/);

  // Back on the same address: the console reconnects by itself, the banner goes, the page is live again.
  const port = new URL(server!.url).port;
  server = await startServer({ embedded: true, dataDir: server!.dataDir, args: ['--port', port] });
  t.is(new URL(server.url).port, port);
  await banner.waitFor({ state: 'hidden', timeout: 40_000 });
  t.true(await start.isEnabled());
  await server.admin.use(`anybios-node-${NODE}`).insert({ _id: 'status:off1', type: 'status', name: 'off1', phase: 'stopped', logTail: 'after the restart\n', observedRev: made.body.rev, updated: new Date().toISOString() } as never);
  await t.notThrowsAsync(page.getByRole('log').getByText('after the restart').waitFor({ timeout: 10_000 }));
  await page.close();
});
