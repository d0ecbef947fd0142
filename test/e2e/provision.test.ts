// tasks/provision.ts, the main job, through the CLI on three fresh lab hosts in parallel: the
// whole baseline (hardened SSH, fail2ban, unattended upgrades, ufw, an nginx reverse proxy with a
// certificate from a real ACME server). Every assertion reads the hosts or talks to them.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { withAcme } from '../../lab/acme.ts';
import { poll, run } from '../../lab/exec.ts';
import { OPS_PASSWORD, withLab } from '../../lab/lab.ts';
import { request, UPSTREAM_PATH, UPSTREAM_SCRIPT, upstreamUnit, websocket } from '../../lab/upstream.ts';
import { changedSteps, labInventory, runTaskCli, plannedSteps } from './support/cli.ts';
import { assertCleanConfigs } from './support/configs.ts';
import { passwordLogin } from './support/ssh.ts';

const lab = await withLab(t, 3);
const acme = await withAcme(t, lab);
const names = lab.hosts.map((h) => h.name);
const domain = (name: string) => `${name}.app.test`;
const pubKey = (await readFile(`${lab.privateKeyPath}.pub`, 'utf8')).trim();

// The app behind nginx: an echo server on 127.0.0.1:8000 (not provision's job).
await Promise.all(
  lab.hosts.map(async (h) => {
    await acme.addHost(domain(h.name), h.address);
    const unit = upstreamUnit(8000);
    await lab.ssh(h.name, `cat > ${UPSTREAM_PATH} && chmod 755 ${UPSTREAM_PATH}`, { input: UPSTREAM_SCRIPT });
    await lab.ssh(h.name, 'cat > /etc/systemd/system/app.service && systemctl daemon-reload && systemctl enable --now app && echo "root:root-pw-1" | chpasswd', { input: unit });
  }),
);

const inventory = await labInventory(
  lab,
  Object.fromEntries(
    lab.hosts.map((h) => [
      h.name,
      {
        vars: {
          deployKeys: [pubKey],
          trusted: [lab.bridgeAddress],
          sites: [{ name: 'app', serverNames: [domain(h.name)], upstreams: ['127.0.0.1:8000'], websocketPaths: ['/ws'], rateLimit: { rate: '1r/s', burst: 2 } }],
          acme: { email: 'ops@app.test', server: acme.directoryUrl, caCertPem: acme.caCertPem },
        },
      },
    ]),
  ),
);

t.test('dry-run predicts the first run exactly; the first run converges three hosts; the second changes nothing', async (t) => {
  const dry = await runTaskCli('tasks/provision.ts', ['--inventory', inventory, '--dry-run']);
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout.slice(-3000), stderr: dry.stderr });
  for (const name of names) {
    const untouched = await lab.ssh(name, 'command -v ufw nginx fail2ban-server || id deploy || test -e /etc/ssh/sshd_config.d/00-tackle.conf; echo $?');
    t.equal(untouched.stdout, '1\n', `${name}: the dry-run changed nothing`);
  }
  const real = await runTaskCli('tasks/provision.ts', ['--inventory', inventory]);
  t.equal(real.code, 0, 'first run', { stdout: real.stdout.slice(-5000), stderr: real.stderr });
  t.same(plannedSteps(real.report), plannedSteps(dry.report), 'the dry-run listed exactly the steps the first run changed');
  t.same(real.report?.summary, { ok: 0, changed: 3, failed: 0, unreachable: 0, skipped: 0 });
  const again = await runTaskCli('tasks/provision.ts', ['--inventory', inventory]);
  t.equal(again.code, 0);
  t.same(changedSteps(again.report), Object.fromEntries(names.map((n) => [n, []])), 'second run: 0 changed steps');
});

t.test('generated configs are clean: nginx -t and sshd -t print no warnings', (t) => assertCleanConfigs(t, lab, names));

t.test('SSH: passwords refused (root too); the deploy user logs in with its key and sudo -n works', async (t) => {
  for (const h of lab.hosts) {
    t.match(await passwordLogin(h.address, 'ops', OPS_PASSWORD), /All configured authentication methods failed/, `${h.name}: ops password refused`);
    t.match(await passwordLogin(h.address, 'root', 'root-pw-1'), /All configured authentication methods failed/, `${h.name}: root password refused`);
    const deploy = await lab.ssh(h.name, 'id -un && sudo -n true && echo sudo-ok', { user: 'deploy' });
    t.equal(deploy.stdout, 'deploy\nsudo-ok\n', `${h.name}: deploy key login and sudo -n`);
  }
});

t.test('fail2ban answers for sshd; ufw has exactly the rules, default deny; other ports do not answer', async (t) => {
  for (const h of lab.hosts) {
    t.match((await lab.ssh(h.name, 'fail2ban-client status sshd')).stdout, /Status for the jail: sshd/);
    const status = (await lab.ssh(h.name, 'ufw status verbose')).stdout;
    t.match(status, /Status: active/);
    // ufw shows routed "disabled" while the kernel does not forward; its policy file says DROP.
    t.match(status, /Default: deny \(incoming\), allow \(outgoing\), (deny|disabled) \(routed\)/);
    const rules = status
      .split('\n')
      .filter((l) => /^\d+(\/tcp)?(\s|\(v6\))/.test(l))
      .map((l) => l.replace(/\s+/g, ' ').trim());
    t.same(rules, [
      `22/tcp ALLOW IN ${lab.bridgeAddress} # ssh trusted`,
      '22/tcp LIMIT IN Anywhere # ssh',
      '80/tcp ALLOW IN Anywhere # web',
      '443/tcp ALLOW IN Anywhere # web',
      '22/tcp (v6) LIMIT IN Anywhere (v6) # ssh',
      '80/tcp (v6) ALLOW IN Anywhere (v6) # web',
      '443/tcp (v6) ALLOW IN Anywhere (v6) # web',
    ], `${h.name}: exactly the configured rules`);
  }
  const h = lab.hosts[0];
  if (!h) return;
  await lab.ssh(h.name, 'systemd-run --unit=probe9000 python3 -m http.server 9000');
  t.equal((await lab.ssh(h.name, 'curl -s -o /dev/null -w "%{http_code}" --retry 20 --retry-connrefused --retry-delay 0 http://127.0.0.1:9000/')).stdout, '200', 'port 9000 answers on the host');
  const outside = await run('curl', ['-s', '-o', '/dev/null', '--max-time', '3', `http://${h.address}:9000/`]);
  t.equal(outside.code, 28, 'port 9000 times out from the controller (dropped by ufw)');
});

t.test('nginx: HTTPS with the ACME certificate, redirect, proxy headers, security headers, websocket, rate limit', async (t) => {
  const root = await acme.issuingRoot();
  for (const h of lab.hosts) {
    const host = domain(h.name);
    const https = await poll(() => request({ address: h.address, host, path: '/hello', ca: root }).catch(() => undefined), {
      timeoutMs: 10_000,
      onTimeout: () => new Error(`${h.name}: nothing answers HTTPS`),
    });
    t.equal(https.status, 200, `${h.name}: HTTPS verified against the ACME root`);
    t.match(https.certificate?.subjectAltName, `DNS:${host}`);
    t.match(JSON.parse(https.body), { path: '/hello', headers: { host, 'x-forwarded-for': lab.bridgeAddress, 'x-forwarded-proto': 'https' } }, 'the upstream sees Host and X-Forwarded-For');
    t.match(https.headers, { 'strict-transport-security': /max-age=/, 'x-frame-options': 'SAMEORIGIN', 'x-content-type-options': 'nosniff', 'referrer-policy': /./ });
    const http = await request({ address: h.address, host, path: '/x' });
    t.equal(http.status, 301);
    t.equal(http.headers.location, `https://${host}/x`, 'HTTP redirects to HTTPS');
    const ws = await websocket({ address: h.address, host, path: '/ws', ca: root, port: 443 });
    t.equal(ws.status, 101, `${h.name}: websocket upgrade reaches the upstream`);
    t.equal(ws.headers['sec-websocket-accept'], ws.expectedAccept);
  }
  const h = lab.hosts[0];
  if (!h) return;
  const burst = await Promise.all(Array.from({ length: 10 }, () => request({ address: h.address, host: domain(h.name), path: '/', ca: root })));
  t.ok(burst.filter((r) => r.status === 429).length >= 5, 'a burst beyond the rate limit is rejected with 429', { statuses: burst.map((r) => r.status) });
});
