// Debian 13 (trixie) beside Debian 12: on two trixie lab hosts (OpenSSH 10, nginx 1.26, fail2ban
// 1.1, PostgreSQL 17, ufw over iptables-nft) the jobs the other e2e files prove on bookworm, in the
// order a team meets them: tasks/provision.ts with a certificate from pebble, its fail2ban jail
// attacked from lab2 and from the trusted controller (and after a reboot), a deploy of the app
// behind the provisioned HTTPS site (then a failed release rolled back, and a rollback), and the
// nightly PostgreSQL backup to an S3 server with a restore drill. One lab serves every scenario;
// every assertion reads the hosts, the site or the S3 server.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { withAcme } from '../../lab/acme.ts';
import { poll, run } from '../../lab/exec.ts';
import { OPS_PASSWORD, withLab, type SshOptions } from '../../lab/lab.ts';
import { startS3 } from '../../lab/s3.ts';
import { request } from '../../lab/upstream.ts';
import { installAppUnit, serveAppRepo } from './support/app-repo.ts';
import { changedSteps, labInventory, runTaskCli, plannedSteps } from './support/cli.ts';
import { assertCleanConfigs } from './support/configs.ts';
import { controllerPeer, labPeer, sshdJail } from './support/fail2ban.ts';
import { passwordLogin } from './support/ssh.ts';

// A fresh machine first builds the trixie image (3.5 min here, under load) before the scenarios'
// 5 to 9 min (measured here beside other labs): more than the runner's limit per file.
t.setTimeout(20 * 60_000);
const lab = await withLab(t, 2, { image: { suite: 'trixie' } });
const names = lab.hosts.map((h) => h.name);
const acme = await withAcme(t, lab);
const s3 = await startS3(lab.bridgeAddress, 'backups');
t.teardown(() => s3.close());
const domain = (name: string) => `${name}.app.test`;
for (const h of lab.hosts) await acme.addHost(domain(h.name), h.address);
const pubKey = (await readFile(`${lab.privateKeyPath}.pub`, 'utf8')).trim();

// The deployed app (tags a and b healthy, c answering 500 on /health) is the provisioned site's upstream.
const repo = await serveAppRepo(t, lab, [
  ['a', 'ok'],
  ['b', 'ok'],
  ['c', 'broken'],
]);
await installAppUnit(lab, names);

/** Runs a command on a host and returns its stdout; a non-zero exit fails loudly. */
const out = async (host: string, command: string, opts: SshOptions = {}): Promise<string> => {
  const r = await lab.ssh(host, command, opts);
  if (r.code !== 0) throw new Error(`${host}: ${command}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
};
const perHost = (vars: (name: string) => Record<string, unknown>) => labInventory(lab, Object.fromEntries(names.map((n) => [n, { vars: vars(n) }])));
const sameForAll = <T>(value: T) => Object.fromEntries(names.map((n) => [n, value]));

t.test('the hosts are Debian 13 and boot cleanly', async (t) => {
  for (const n of names) {
    t.equal(await out(n, '. /etc/os-release && echo "$VERSION_ID $VERSION_CODENAME"'), '13 trixie\n', `${n}: Debian 13`);
    t.match(await out(n, 'systemctl is-system-running || true'), /^running\n$/, `${n}: systemd booted cleanly`);
    // A host whose units failed keeps /run/nologin, which refuses every login but root's.
    t.equal(await out(n, 'test -e /run/nologin && echo present || echo absent'), 'absent\n', `${n}: logins are open`);
  }
});

const provisionInventory = await perHost((n) => ({
  deployKeys: [pubKey],
  trusted: [lab.bridgeAddress],
  sites: [{ name: 'app', serverNames: [domain(n)], upstreams: ['127.0.0.1:8000'] }],
  acme: { email: 'ops@app.test', server: acme.directoryUrl, caCertPem: acme.caCertPem },
}));
const provision = (...args: string[]) => runTaskCli('tasks/provision.ts', ['--inventory', provisionInventory, ...args]);

t.test('provision with TLS from pebble: the dry-run predicts the first run; the second changes nothing', async (t) => {
  const dry = await provision('--dry-run');
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout.slice(-3000), stderr: dry.stderr });
  const real = await provision();
  t.equal(real.code, 0, 'first run', { stdout: real.stdout.slice(-5000), stderr: real.stderr });
  t.same(plannedSteps(real.report), plannedSteps(dry.report), 'the dry-run listed exactly the steps the first run changed');
  t.ok(changedSteps(real.report).lab1?.includes('certbot.certificate app'), 'a certificate was obtained');
  const again = await provision();
  t.equal(again.code, 0, 'second run', { stdout: again.stdout.slice(-3000) });
  t.same(changedSteps(again.report), sameForAll([]), 'second run: 0 changed steps');
});

const root = await acme.issuingRoot();
const rootFile = join(await mkdtemp(join(tmpdir(), 'tackle-trixie-')), 'root.pem');
await writeFile(rootFile, root);

t.test('generated configs are clean (nginx -t and sshd -t print no warnings) and in force', async (t) => {
  await assertCleanConfigs(t, lab, names);
  for (const n of names) {
    t.match(await out(n, 'nginx -v 2>&1'), /nginx\/1\.2[6-9]\./, `${n}: nginx 1.26 or later`);
    t.match(await out(n, 'grep -E "^\\s*(listen|http2)" /etc/nginx/sites-available/app'), /listen 443 ssl;\n[\s\S]*http2 on;/, `${n}: HTTP/2 by the http2 directive`);
    const { address } = lab.host(n);
    const version = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_version}', '--http2', '--cacert', rootFile, '--resolve', `${domain(n)}:443:${address}`, `https://${domain(n)}/`]);
    t.equal(version.stdout, '2', `${n}: a client gets HTTP/2`);
    const settings = await out(n, 'sshd -T');
    t.match(settings, /^passwordauthentication no$/m, `${n}: passwords are off`);
    t.match(settings, /^permitrootlogin without-password$/m, `${n}: root only with a key`);
    t.match(await passwordLogin(address, 'ops', OPS_PASSWORD), /All configured authentication methods failed/, `${n}: a password login is refused`);
    t.equal(await out(n, 'id -un && sudo -n true && echo sudo-ok', { user: 'deploy' }), 'deploy\nsudo-ok\n', `${n}: the deploy user logs in with its key; sudo -n works`);
    t.match(await out(n, 'fail2ban-client status sshd'), /Status for the jail: sshd/, `${n}: fail2ban answers for sshd`);
    t.match(await out(n, 'ufw status'), /Status: active[\s\S]*\n443\/tcp\s+ALLOW\s+Anywhere/, `${n}: ufw active with the web ports`);
  }
});

// OpenSSH 10 logs failed logins from `sshd-session`; a jail that watches only `sshd` sees none.
// lab2 attacks lab1; the controller's address (trusted by provision above) fails the same logins.
const jail = sshdJail(lab, 'lab1');
const attacker = await labPeer(lab, 'lab2', false);
const controller = controllerPeer(lab, true);
t.test('fail2ban bans an attacker through nftables (its next connection refused), never a trusted address', async (t) => {
  t.equal(await jail.login(attacker), 'in', 'before the attack lab2 logs in with its key');
  await jail.attackUntilBanned(t, attacker);
  t.match(await out('lab1', 'nft list ruleset'), attacker.address, "the ban is a rule in the kernel (nftables, Debian 13's banaction)");
  await jail.refused(t, attacker);
  await jail.trustedAttack(t, controller);
});

t.test('after a reboot of lab1 the ban holds (bantime 1h) and the trusted address logs in', async (t) => {
  await jail.reboot(t);
  t.ok(await jail.bannedWithin(attacker.address), 'lab2 is still banned after the reboot');
  t.equal(await jail.login(attacker), 'refused', 'lab2 still refused');
  t.equal(await jail.login(controller), 'in', 'the controller logs in');
});

const deployInventory = await perHost(() => ({ app: 'app', repo, service: 'app.service', healthUrl: 'http://127.0.0.1:8000/health', healthBody: 'ok', healthTimeout: 8 }));
const deploy = (...args: string[]) => runTaskCli('scripts/deploy.ts', ['--inventory', deployInventory, ...args]);
/** The page the provisioned site serves over HTTPS (verified against pebble's root), once it is `expected`. */
const page = (host: string, expected: string) =>
  poll(
    async () => {
      const r = await request({ address: lab.host(host).address, host: domain(host), ca: root }).catch(() => undefined);
      return r?.status === 200 && r.body === expected ? r : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 200, onTimeout: () => new Error(`${host}: https://${domain(host)}/ never answered 200 ${JSON.stringify(expected)}`) },
  );
const live = async (host: string) => (await out(host, 'readlink /srv/app/current')).trim();

t.test('deploy behind the HTTPS site: release a, then b; c fails its health check and is rolled back; rollback.ts', async (t) => {
  const dry = await deploy('--ref', 'a', '--dry-run');
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout.slice(-3000), stderr: dry.stderr });
  const a = await deploy('--ref', 'a');
  t.equal(a.code, 0, 'deploy a', { stdout: a.stdout.slice(-3000), stderr: a.stderr });
  t.same(plannedSteps(a.report), plannedSteps(dry.report), 'the dry-run listed exactly the steps that changed');
  for (const n of names) t.equal((await page(n, 'release a\n')).certificate?.subjectAltName, `DNS:${domain(n)}`, `${n}: the site serves release a over HTTPS`);

  const b = await deploy('--ref', 'b', '--serial', '1');
  t.equal(b.code, 0, 'deploy b', { stdout: b.stdout.slice(-3000), stderr: b.stderr });
  for (const n of names) await page(n, 'release b\n');
  const onB = await live('lab1');

  const c = await deploy('--ref', 'c', '--serial', '1', '--max-fail', '0');
  t.equal(c.code, 2, 'deploy c fails', { stdout: c.stdout.slice(-3000) });
  t.match(c.report?.hosts[0]?.steps.find((s) => s.name === 'deploy.release app c')?.error?.reason, /^failed \(rolled back\): rolled back to .*answered 500/);
  t.equal(await live('lab1'), onB, 'lab1 is back on b');
  await page('lab1', 'release b\n');
  t.equal((await out('lab2', 'ls /srv/app/releases | grep -c -- -c$ || true')).trim(), '0', 'lab2 never saw c');

  const back = await runTaskCli('scripts/rollback.ts', ['--inventory', deployInventory, '--limit', 'lab2']);
  t.equal(back.code, 0, 'rollback', { stdout: back.stdout.slice(-3000) });
  t.same(changedSteps(back.report), { lab2: ['deploy.rollback app'] });
  await page('lab2', 'release a\n');
  t.pass('lab2 serves release a again over HTTPS');
});

t.test('nightly backup with PostgreSQL 17: dumped, verified, uploaded and checked; the restore drill counts the rows', async (t) => {
  // lab1 is the database host: PostgreSQL installed as its admin would (apt knows the package, tackle's planner does not).
  await out('lab1', 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null');
  t.match(await out('lab1', 'pg_dump --version'), /^pg_dump \(PostgreSQL\) 17\./, 'PostgreSQL 17');
  await out('lab1', `cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE DATABASE app' -d postgres && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d app -c "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2500) g"`);
  const backup = { databases: ['app'], remote: { name: 's3', provider: 'Other', endpoint: s3.endpoint, bucket: 'backups', retries: 1, lowLevelRetries: 1 } };
  const inventory = await labInventory(lab, { lab1: { vars: { backup } } });
  const env = { BACKUP_ACCESS_KEY_ID: s3.accessKeyId, BACKUP_SECRET_ACCESS_KEY: s3.secretAccessKey };
  const nightly = await runTaskCli('scripts/nightly-backup.ts', ['--inventory', inventory], env);
  t.equal(nightly.code, 0, 'nightly backup', { stdout: nightly.stdout.slice(-3000), stderr: nightly.stderr });
  t.same(changedSteps(nightly.report).lab1?.slice(-3), ['postgres.dump app', 'rclone.copy /var/backups/postgresql → s3:backups/lab1', 'rclone.check /var/backups/postgresql ↔ s3:backups/lab1']);
  const dump = (await out('lab1', 'ls /var/backups/postgresql | grep -E "^app-[0-9]{8}T[0-9]{6}Z\\.dump$"')).trim();
  t.same(await s3.keys('lab1/'), [`lab1/${dump}`, `lab1/${dump}.sha256`], 'the dump and its checksum are on the S3 server');
  const uploaded = createHash('sha256').update(await s3.object(`lab1/${dump}`)).digest('hex');
  t.equal((await s3.object(`lab1/${dump}.sha256`)).toString(), `${uploaded}  ${dump}\n`, 'the uploaded bytes have the published checksum');

  const drill = await runTaskCli('scripts/restore.ts', ['--inventory', inventory, '--limit', 'lab1', '--into', 'app_drill'], env);
  t.equal(drill.code, 0, 'restore drill', { stdout: drill.stdout.slice(-3000), stderr: drill.stderr });
  t.equal(await out('lab1', `cd / && runuser -u postgres -- psql -XAtq -d app_drill -c 'SELECT count(*) FROM t'`), '2500\n', 'the restored copy has every row');
});
