// certbot.certificate end to end against a real ACME server: pebble on the lab's bridge address
// validates http-01 on the host's port 80 (answered by certbot's nginx plugin), then nginx.site
// serves the certificate over HTTPS. Verified from the controller with pebble's issuing root.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { withAcme } from '../../lab/acme.ts';
import { poll } from '../../lab/exec.ts';
import { withLab } from '../../lab/lab.ts';
import { request, websocket } from '../../lab/upstream.ts';
import { changedSteps, labInventory, runTaskCli, plannedSteps } from './support/cli.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const lab = await withLab(t, 1);
const acme = await withAcme(t, lab);
const address = lab.host('lab1').address;
for (const name of ['app.test', 'www.app.test']) await acme.addHost(name, address);
const inventory = await labInventory(lab);
const dir = await mkdtemp(join(tmpdir(), 'tackle-web-certbot-'));
const CA_ON_HOST = '/usr/local/share/ca-certificates/tackle-lab-acme.crt';
const SECRET = 'tackle-secret-must-not-show';

/** The task a person would write; `renewBeforeDays` varies between runs. */
async function taskFile(file: string, renewBeforeDays: number): Promise<string> {
  const path = join(dir, `${file}.mts`);
  const lib = (p: string) => JSON.stringify(join(ROOT, p));
  await writeFile(
    path,
    `import { apt, defineTask, files, isMain, runCli, secret, systemd } from ${lib('lib/index.ts')};
import { certbot } from ${lib('lib/ops/certbot.ts')};
import { nginx } from ${lib('lib/ops/nginx.ts')};
import { UPSTREAM_PATH, UPSTREAM_SCRIPT, upstreamUnit } from ${lib('lab/upstream.ts')};
const task = defineTask({
  name: 'web-certbot',
  async run(host) {
    await host.run(apt.packages({ names: ['nginx', 'certbot', 'python3-certbot-nginx'] }));
    await host.run(nginx.defaultSite({ present: false, notify: 'reload nginx' }));
    await host.run(files.file({ path: ${JSON.stringify(CA_ON_HOST)}, content: ${JSON.stringify(acme.caCertPem)} }));
    await host.run(files.file({ path: UPSTREAM_PATH, content: UPSTREAM_SCRIPT, mode: '0755', notify: 'restart upstream' }));
    await host.run(systemd.unitFile({ name: 'tackle-upstream', content: upstreamUnit(8000), notify: 'restart upstream' }));
    await host.run(systemd.service({ name: 'tackle-upstream', enabled: true, state: 'started' }));
    await host.run(certbot.certificate({
      domains: ['app.test', 'www.app.test'],
      email: 'ops@app.test',
      authenticator: 'nginx',
      server: ${JSON.stringify(acme.directoryUrl)},
      env: { REQUESTS_CA_BUNDLE: ${JSON.stringify(CA_ON_HOST)}, TACKLE_TEST_TOKEN: secret(${JSON.stringify(SECRET)}) },
      renewBeforeDays: ${renewBeforeDays},
      notify: 'reload nginx',
    }));
    await host.run(nginx.site({
      name: 'app',
      serverNames: ['app.test', 'www.app.test'],
      upstreams: ['127.0.0.1:8000'],
      websocketPaths: ['/ws'],
      tls: certbot.paths('app.test'),
      notify: 'reload nginx',
    }));
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

t.test('a certificate from pebble, served by nginx over HTTPS; dry-run predicted it; second run changes nothing', async (t) => {
  const task = await taskFile('issue', 30);
  const dry = await runTaskCli(task, ['--inventory', inventory, '--dry-run']);
  t.equal(dry.code, 0, 'dry-run exit code', { stdout: dry.stdout.slice(-3000), stderr: dry.stderr });
  t.match(dry.stdout, /obtain certificate app\.test for app\.test, www\.app\.test/);

  const real = await runTaskCli(task, ['--inventory', inventory]);
  t.equal(real.code, 0, 'real run exit code', { stdout: real.stdout.slice(-4000), stderr: real.stderr });
  t.same(plannedSteps(real.report), plannedSteps(dry.report), 'the dry-run listed exactly the steps the real run changed');
  t.ok(changedSteps(real.report).lab1?.includes('certbot.certificate app.test'));
  for (const text of [dry.stdout, dry.stderr, real.stdout, real.stderr, JSON.stringify(real.report), JSON.stringify(dry.report)]) t.notOk(text.includes(SECRET), 'the secret env value never shows');
  t.match(JSON.stringify(dry.report), /TACKLE_TEST_TOKEN=\*\*\*/, 'it shows as ***');

  const root = await acme.issuingRoot();
  // `systemctl reload nginx` returns once nginx is signalled; it opens port 443 moments later.
  const https = await poll(() => request({ address, host: 'app.test', path: '/secure?a=1', ca: root }).catch(() => undefined), {
    timeoutMs: 10_000,
    intervalMs: 100,
    onTimeout: () => new Error('nothing answers HTTPS on port 443'),
  });
  t.equal(https.status, 200, 'HTTPS verified against pebble\'s issuing root', { body: https.body });
  t.match(https.certificate?.subjectAltName, /DNS:app\.test/);
  t.match(https.certificate?.subjectAltName, /DNS:www\.app\.test/);
  t.match(JSON.parse(https.body), { path: '/secure?a=1', headers: { host: 'app.test', 'x-forwarded-proto': 'https', 'x-forwarded-for': lab.bridgeAddress } });
  t.match(https.headers, { 'strict-transport-security': 'max-age=31536000', 'x-frame-options': 'SAMEORIGIN', 'x-content-type-options': 'nosniff' });
  t.equal((await request({ address, host: 'www.app.test', ca: root })).status, 200, 'the second name is served too');
  t.equal((await websocket({ address, host: 'app.test', path: '/ws', ca: root })).status, 101, 'WebSocket over TLS');

  const http = await request({ address, host: 'app.test', path: '/x?y=1' });
  t.equal(http.status, 301, 'plain HTTP redirects');
  t.equal(http.headers.location, 'https://app.test/x?y=1');
  await lab.ssh('lab1', 'mkdir -p /var/www/html/.well-known/acme-challenge && echo probe > /var/www/html/.well-known/acme-challenge/probe');
  const challenge = await request({ address, host: 'app.test', path: '/.well-known/acme-challenge/probe' });
  t.same([challenge.status, challenge.body], [200, 'probe\n'], 'ACME challenges are served over HTTP, not redirected');

  const timer = await lab.ssh('lab1', 'systemctl is-enabled certbot.timer; systemctl is-active certbot.timer');
  t.equal(timer.stdout, 'enabled\nactive\n', 'the renewal timer is enabled and active');

  const again = await runTaskCli(task, ['--inventory', inventory]);
  t.equal(again.code, 0, 'second run', { stdout: again.stdout.slice(-3000) });
  t.same(changedSteps(again.report), { lab1: [] }, 'second run: 0 changed steps, no certificate requested');
});

t.test('renewBeforeDays beyond the expiry renews, and the handler makes nginx serve the new certificate', async (t) => {
  const root = await acme.issuingRoot();
  const before = await request({ address, host: 'app.test', ca: root });
  // Pebble's certificates last five years: 3000 days before expiry is now.
  const renew = await runTaskCli(await taskFile('renew', 3000), ['--inventory', inventory]);
  t.equal(renew.code, 0, 'renewal run', { stdout: renew.stdout.slice(-3000) });
  t.same(changedSteps(renew.report), { lab1: ['certbot.certificate app.test', 'reload nginx › systemd.service nginx reloaded'] });
  t.match(renew.report?.hosts[0]?.steps.find((s) => s.name === 'certbot.certificate app.test')?.summary, /renew certificate app\.test: it expires in \d+ day\(s\), within 3000/);
  const lineage = await lab.ssh('lab1', 'openssl x509 -noout -serial -in /etc/letsencrypt/live/app.test/cert.pem');
  const serial = lineage.stdout.trim().replace(/^serial=/, '');
  t.not(serial, before.certificate?.serial, 'certbot saved a new certificate');
  // `systemctl reload nginx` returns once the signal is sent; the new workers follow within moments.
  const after = await poll(async () => {
    const r = await request({ address, host: 'app.test', ca: root });
    return r.certificate?.serial === serial ? r : undefined;
  }, { timeoutMs: 10_000, intervalMs: 100, onTimeout: () => new Error(`nginx still serves ${before.certificate?.serial}, not ${serial}`) });
  t.equal(after.status, 200, 'the new certificate is served');
});

t.test('the webroot authenticator, answered by the site\'s HTTP server (acmeWebroot), converges too', async (t) => {
  await acme.addHost('api.app.test', address);
  const path = join(dir, 'webroot.mts');
  await writeFile(
    path,
    `import { defineTask, isMain, runCli } from ${JSON.stringify(join(ROOT, 'lib/index.ts'))};
import { certbot } from ${JSON.stringify(join(ROOT, 'lib/ops/certbot.ts'))};
const task = defineTask({ name: 'webroot', async run(host) {
  await host.run(certbot.certificate({ domains: ['api.app.test'], certName: 'api', email: 'ops@app.test', authenticator: 'webroot', webroot: '/var/www/html',
    server: ${JSON.stringify(acme.directoryUrl)}, env: { REQUESTS_CA_BUNDLE: ${JSON.stringify(CA_ON_HOST)} } }));
} });
if (isMain(import.meta.url, process.argv)) process.exitCode = await runCli(task, { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr });
`,
  );
  // No server names api.app.test: the app site's HTTP server answers it as the only one on port 80.
  const first = await runTaskCli(path, ['--inventory', inventory]);
  t.equal(first.code, 0, 'issued through the webroot', { stdout: first.stdout.slice(-3000) });
  t.same(changedSteps(first.report), { lab1: ['certbot.certificate api'] });
  const conf = await lab.ssh('lab1', 'grep -E "^(authenticator|webroot_path)" /etc/letsencrypt/renewal/api.conf; openssl x509 -noout -ext subjectAltName -in /etc/letsencrypt/live/api/cert.pem | tail -1');
  t.equal(conf.stdout, 'authenticator = webroot\nwebroot_path = /var/www/html,\n    DNS:api.app.test\n');
  const again = await runTaskCli(path, ['--inventory', inventory]);
  t.same(changedSteps(again.report), { lab1: [] }, 'second run: nothing requested');
});
