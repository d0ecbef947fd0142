// nginx.site end to end on a fresh lab host, through the CLI: nginx installed with apt.packages, a
// python upstream behind it, the site checked with nginx -t and reloaded by a handler. Every
// assertion is made from the controller (as a client) or read from the host with ssh.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { renderSite, type SiteSpec } from '../../lib/ops/nginx.ts';
import { poll } from '../../lab/exec.ts';
import { withLab } from '../../lab/lab.ts';
import { request, websocket, type Reply } from '../../lab/upstream.ts';
import { changedSteps, labInventory, runTaskCli, plannedSteps } from './support/cli.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const lab = await withLab(t, 1);
const inventory = await labInventory(lab);
const address = lab.host('lab1').address;
const dir = await mkdtemp(join(tmpdir(), 'tackle-web-nginx-'));

const site = (extra: string[]): SiteSpec => ({
  name: 'app',
  serverNames: ['app.test'],
  upstreams: { servers: ['127.0.0.1:8000'], keepalive: 4 },
  websocketPaths: ['/ws'],
  rateLimit: { rate: '1r/s', burst: 2, nodelay: true },
  gzip: true,
  clientMaxBodySize: '1m',
  locations: [{ path: '/', extra }],
});
const v1 = site(['add_header X-Site-Version v1 always']);

/** A task file like a person would write, with the site spec given; `sites` are applied in order. */
async function taskFile(file: string, sites: SiteSpec[]): Promise<string> {
  const path = join(dir, `${file}.mts`);
  const lib = (p: string) => JSON.stringify(join(ROOT, p));
  await writeFile(
    path,
    `import { apt, defineTask, files, isMain, runCli, systemd } from ${lib('lib/index.ts')};
import { nginx } from ${lib('lib/ops/nginx.ts')};
import { UPSTREAM_PATH, UPSTREAM_SCRIPT, upstreamUnit } from ${lib('lab/upstream.ts')};
const sites = ${JSON.stringify(sites)};
const task = defineTask({
  name: 'web-nginx',
  async run(host) {
    await host.run(apt.packages({ names: ['nginx'] }));
    await host.run(nginx.defaultSite({ present: false, notify: 'reload nginx' }));
    await host.run(files.file({ path: UPSTREAM_PATH, content: UPSTREAM_SCRIPT, mode: '0755', notify: 'restart upstream' }));
    await host.run(systemd.unitFile({ name: 'tackle-upstream', content: upstreamUnit(8000), notify: 'restart upstream' }));
    await host.run(systemd.service({ name: 'tackle-upstream', enabled: true, state: 'started' }));
    // No systemd.service nginx started: its package starts it (and apt.packages says so to a dry run).
    for (const site of sites) await host.run(nginx.site({ ...site, notify: 'reload nginx' }));
  },
  handlers: {
    'restart upstream': async (host) => { await host.run(systemd.service({ name: 'tackle-upstream', state: 'restarted' })); },
    'reload nginx': async (host) => { await host.run(systemd.service({ name: 'nginx', state: 'reloaded' })); },
  },
});
if (isMain(import.meta.url, process.argv)) process.exitCode = await runCli(task, { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr });
`,
  );
  return path;
}

/**
 * A request answered by the app site: polls past the site's own rate limit (429) and past the
 * moment after `systemctl reload nginx` returns but before nginx has switched to the new config.
 */
function get(path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return poll(async () => {
    const r = await request({ address, host: 'app.test', path, headers }).catch(() => undefined);
    return r === undefined || r.status === 429 || r.headers['x-site-version'] === undefined ? undefined : r;
  }, { timeoutMs: 15_000, intervalMs: 200, onTimeout: () => new Error(`${path} was not answered by the app site`) });
}

const echo = (r: Reply) => JSON.parse(r.body) as { path: string; headers: Record<string, string> };

t.test('dry-run predicts the first run; the site proxies, upgrades, limits; the second run changes nothing', async (t) => {
  const task = await taskFile('v1', [v1]);
  const dry = await runTaskCli(task, ['--inventory', inventory, '--dry-run']);
  t.equal(dry.code, 0, 'dry-run exit code', { stdout: dry.stdout.slice(-3000), stderr: dry.stderr });
  t.equal((await lab.ssh('lab1', 'test -e /etc/nginx || dpkg -s nginx >/dev/null 2>&1; echo $?')).stdout, '1\n', 'the dry-run installed nothing');
  t.notMatch(dry.stdout, /not installed/, 'the site is planned against the nginx the step before it installs');

  const real = await runTaskCli(task, ['--inventory', inventory]);
  t.equal(real.code, 0, 'real run exit code', { stdout: real.stdout.slice(-3000), stderr: real.stderr });
  t.same(plannedSteps(real.report), plannedSteps(dry.report), 'the dry-run listed exactly the steps the real run changed');
  t.ok(changedSteps(real.report).lab1?.includes('nginx.site app'));
  t.ok(changedSteps(real.report).lab1?.includes('reload nginx › systemd.service nginx reloaded'), 'nginx reloaded by the handler');

  // On the host: the file is exactly the rendered site, linked, and Debian's default site is gone.
  const files = await lab.ssh('lab1', 'cat /etc/nginx/sites-available/app; readlink /etc/nginx/sites-enabled/app; ls /etc/nginx/sites-enabled');
  t.equal(files.stdout, `${renderSite(v1)}/etc/nginx/sites-available/app\napp\n`);

  // As a client: the upstream sees the proxy headers; the response carries the security headers.
  const r = await get('/hello?x=1', { 'X-Forwarded-For': '203.0.113.9' });
  t.equal(r.status, 200, 'proxied', { body: r.body });
  const seen = echo(r);
  t.equal(seen.path, '/hello?x=1');
  t.equal(seen.headers.host, 'app.test', 'Host passed on');
  t.equal(seen.headers['x-forwarded-for'], `203.0.113.9, ${lab.bridgeAddress}`, 'X-Forwarded-For appended with the client address');
  t.equal(seen.headers['x-real-ip'], lab.bridgeAddress);
  t.equal(seen.headers['x-forwarded-proto'], 'http');
  t.match(r.headers, { 'x-frame-options': 'SAMEORIGIN', 'x-content-type-options': 'nosniff', 'referrer-policy': 'strict-origin-when-cross-origin', 'x-site-version': 'v1' });
  t.notOk(r.headers['strict-transport-security'], 'no HSTS without TLS');
  t.equal((await get('/', { 'Accept-Encoding': 'gzip' })).headers['content-encoding'], 'gzip', 'gzip on for JSON');

  // A real WebSocket handshake reaches the upstream and the upstream's first frame comes back.
  const hs = await poll(async () => {
    const h = await websocket({ address, host: 'app.test', path: '/ws' });
    return h.status === 429 ? undefined : h;
  }, { timeoutMs: 15_000, intervalMs: 300, onTimeout: () => new Error('/ws kept answering 429') });
  t.equal(hs.status, 101, 'switching protocols');
  t.equal(hs.headers['sec-websocket-accept'], hs.expectedAccept, 'the upstream accepted our key');
  t.match(JSON.parse(hs.firstFrame ?? '{}'), { path: '/ws', headers: { upgrade: 'websocket', connection: 'upgrade', host: 'app.test' } }, 'Upgrade passed through');

  // A burst beyond 1r/s + 2 is turned away with 429: at most 3 of 10 get through.
  const burst = await Promise.all(Array.from({ length: 10 }, () => request({ address, host: 'app.test', path: '/burst' })));
  const codes = burst.map((b) => b.status);
  t.ok(codes.every((c) => c === 200 || c === 429) && codes.filter((c) => c === 429).length >= 7, `rejected with 429: ${codes.join(' ')}`);
  t.equal((await get('/after-burst')).status, 200, 'served again once the rate allows');

  const again = await runTaskCli(task, ['--inventory', inventory]);
  t.equal(again.code, 0);
  t.same(changedSteps(again.report), { lab1: [] }, 'second run: 0 changed steps');
});

t.test('a site nginx -t rejects is rolled back: the step fails, the old file is back and still serves', async (t) => {
  const before = (await lab.ssh('lab1', 'cat /etc/nginx/sites-available/app')).stdout;
  const bad = await runTaskCli(await taskFile('bad', [site(['add_header X-Site-Version v2 always', 'bogus_directive on'])]), ['--inventory', inventory]);
  t.equal(bad.code, 2, 'a failed host makes exit code 2');
  const step = bad.report?.hosts[0]?.steps.find((s) => s.name === 'nginx.site app');
  t.equal(step?.status, 'failed');
  t.match(step?.error, { phase: 'command', host: 'lab1', step: 'nginx.site app', stderrTail: /nginx -t rejected the new \/etc\/nginx\/sites-available\/app and \/etc\/nginx\/sites-enabled\/app; the previous version is back in place:\n[\s\S]*unknown directive "bogus_directive"/ });
  t.match(bad.stdout, /lab1 failed:[\s\S]*bogus_directive/);

  const after = await lab.ssh('lab1', 'cat /etc/nginx/sites-available/app; readlink /etc/nginx/sites-enabled/app; ls -A /etc/nginx/sites-available | grep -c tackle || true');
  t.equal(after.stdout, `${before}/etc/nginx/sites-available/app\n0\n`, 'previous file and link back, no temporary file left');
  t.equal((await get('/')).headers['x-site-version'], 'v1', 'the old site still answers');
  t.equal((await lab.ssh('lab1', 'systemctl reload nginx && nginx -t 2>&1 | tail -1')).stdout, 'nginx: configuration file /etc/nginx/nginx.conf test is successful\n', 'the restored configuration is valid');
  t.equal((await get('/')).headers['x-site-version'], 'v1', 'and still serves after a reload');

  // A new site that never existed leaves nothing behind.
  const fresh = { ...site(['bogus_directive on']), name: 'broken', serverNames: ['broken.test'] };
  const broken = await runTaskCli(await taskFile('broken', [v1, fresh]), ['--inventory', inventory]);
  t.equal(broken.code, 2);
  t.match(broken.report?.hosts[0]?.steps.find((s) => s.name === 'nginx.site broken'), { status: 'failed', error: { host: 'lab1' } });
  t.equal((await lab.ssh('lab1', 'ls /etc/nginx/sites-available /etc/nginx/sites-enabled')).stdout, '/etc/nginx/sites-available:\napp\ndefault\n\n/etc/nginx/sites-enabled:\napp\n', 'no broken file or link');
});
