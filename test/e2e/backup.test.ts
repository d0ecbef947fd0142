// Backups end to end on two lab hosts with a real PostgreSQL (Debian's package, installed by a task
// through apt.packages) and sample data: scripts/nightly-backup.ts and scripts/restore.ts run
// through the CLI as a person would, against s3rver on the lab bridge standing in for Cloudflare
// R2, with a webhook receiver on this machine. Every assertion reads the hosts, the S3 server's
// store or the webhook's log, not tackle's own account of what it did.
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import t from 'tap';
import { apt, defineTask, openConnection, runTask, sh, shell, systemd, type Inventory } from '../../lib/index.ts';
import { startS3 } from '../../lab/s3.ts';
import { withLab } from '../../lab/lab.ts';
import { startWebhook } from '../../lab/webhook.ts';
import { changedSteps, labInventory, runTaskCli, type CliRun, plannedSteps, predicted } from './support/cli.ts';

const lab = await withLab(t, 2);
const s3 = await startS3(lab.bridgeAddress, 'backups');
t.teardown(() => s3.close());
const hook = await startWebhook();
t.teardown(() => hook.close());
const hosts = lab.hosts.map((h) => h.name);
const DIR = '/var/backups/postgresql';
const TABLES = { 'audit.log': 3000, 'public.customers': 5000, 'public.orders': 12000 };

const SAMPLE = `
CREATE DATABASE app;
\\c app
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text);
INSERT INTO customers (name, email) SELECT 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 5000) g;
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers, total numeric(10,2));
INSERT INTO orders (customer_id, total) SELECT 1 + g % 5000, g * 1.5 FROM generate_series(1, 12000) g;
CREATE SCHEMA audit;
CREATE TABLE audit.log (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), message text);
INSERT INTO audit.log (message) SELECT md5(g::text) FROM generate_series(1, 3000) g;
`;

// PostgreSQL with sample data on both hosts, installed once for the whole file by a task.
const postgresLab = defineTask({
  name: 'postgres-lab',
  async run(host) {
    await host.run(apt.packages({ names: ['postgresql'] }));
    await host.run(systemd.service({ name: 'postgresql', state: 'started', enabled: true }));
    await host.run(
      shell({
        name: 'sample database app',
        command: sh`cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1`,
        stdin: SAMPLE,
        unless: sh`cd / && runuser -u postgres -- psql -XAtq -d app -c 'SELECT 1'`,
      }),
    );
  },
});
const plainInventory = (await import(await labInventory(lab))).default as Inventory;
const setup = await runTask(postgresLab, [...plainInventory.hosts.values()], {
  connect: (h) => openConnection(h, plainInventory, { home: homedir(), localUser: 'root', acceptNewHostKeys: false }),
});
for (const h of setup.hosts) if (h.status === 'failed' || h.status === 'unreachable') throw new Error(`PostgreSQL setup failed on ${h.name}: ${h.error?.message}`);

const backup = { databases: ['app'], remote: { name: 's3', provider: 'Other', endpoint: s3.endpoint, bucket: 'backups', retries: 1, lowLevelRetries: 1 } };
const inventory = await labInventory(lab, Object.fromEntries(hosts.map((h) => [h, { groups: ['lab'], vars: { backup } }])));
const env = { BACKUP_ACCESS_KEY_ID: s3.accessKeyId, BACKUP_SECRET_ACCESS_KEY: s3.secretAccessKey, BACKUP_WEBHOOK_URL: hook.url };
const nightly = (...args: string[]) => runTaskCli('scripts/nightly-backup.ts', ['--inventory', inventory, ...args], env);
const restore = (...args: string[]) => runTaskCli('scripts/restore.ts', ['--inventory', inventory, ...args], env);

const sh1 = async (host: string, command: string): Promise<string> => {
  const r = await lab.ssh(host, command);
  if (r.code !== 0) throw new Error(`${host}: ${command}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
};
/** The file names in the backup directory, sorted. */
const localFiles = async (host: string) => (await sh1(host, `ls -1A ${DIR} | sort`)).split('\n').filter(Boolean);
const dumpsOf = (names: readonly string[]) => names.filter((n) => /^app-\d{8}T\d{6}Z\.dump$/.test(n));
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const leaks = (run: CliRun) => [run.stdout, run.stderr, JSON.stringify(run.report)].some((text) => text.includes(s3.secretAccessKey) || text.includes(s3.accessKeyId));
const counts = async (host: string, db: string) =>
  JSON.parse(await sh1(host, `cd / && runuser -u postgres -- psql -XAtq -d ${db} -c "SELECT json_build_object('audit.log', (SELECT count(*) FROM audit.log), 'public.customers', (SELECT count(*) FROM customers), 'public.orders', (SELECT count(*) FROM orders))"`)) as Record<string, number>;
const failedStep = (run: CliRun, host: string) => run.report?.hosts.find((h) => h.name === host)?.steps.find((s) => s.status === 'failed');

t.test('nightly backup: the dry-run predicts it, both hosts end with a verified dump locally and on S3, keys never shown', async (t) => {
  const dry = await nightly('--dry-run', '--verbose', '--diff');
  t.equal(dry.code, 0, 'dry-run exit code', { stdout: dry.stdout.slice(-3000), stderr: dry.stderr });
  for (const h of hosts) t.equal((await lab.ssh(h, `test -e ${DIR} || test -e /root/.config/rclone/rclone.conf || dpkg -s rclone >/dev/null 2>&1; echo $?`)).stdout, '1\n', `${h}: the dry-run changed nothing`);
  t.same(await s3.keys(), [], 'nothing uploaded by a dry-run');
  t.match(dry.stdout, /postgres\.dump app — dump app \(host as postgres\) to \/var\/backups\/postgresql\/app-\d{8}T\d{6}Z\.dump, verify it by a full read/);

  const real = await nightly();
  t.equal(real.code, 0, 'exit code', { stdout: real.stdout.slice(-3000), stderr: real.stderr });
  // On hosts without a backup yet: the local listing is of a directory this run creates, the
  // remote is listed by an rclone this run installs and configures.
  const fresh = (h: string) => [`postgres.prune ${DIR}`, `rclone.prune s3:backups/${h}`];
  t.same(plannedSteps(real.report), predicted(dry.report, real.report, Object.fromEntries(hosts.map((h) => [h, fresh(h)]))), 'the dry-run predicted every step it could know');
  t.same(changedSteps(real.report).lab1, [
    'apt.packages rclone',
    'rclone.remote s3',
    'files.directory /var/backups/postgresql',
    'postgres.dump app',
    'rclone.copy /var/backups/postgresql → s3:backups/lab1',
    'rclone.check /var/backups/postgresql ↔ s3:backups/lab1',
  ]);
  for (const h of hosts) {
    const names = await localFiles(h);
    const [dump] = dumpsOf(names);
    t.same(names, [dump, `${dump}.sha256`], `${h}: one dump and its checksum, nothing else`);
    t.equal(await sh1(h, `cd ${DIR} && sha256sum -c ${dump}.sha256 && pg_restore --list ${dump} | grep -c 'TABLE DATA'`), `${dump}: OK\n3\n`, `${h}: the checksum holds and the archive has the three tables`);
    t.equal(await sh1(h, `stat -c '%a %U' ${DIR} ${DIR}/${dump} /root/.config/rclone/rclone.conf`), '700 root\n600 root\n600 root\n', `${h}: backups and keys readable by root only`);
    t.same(await s3.keys(`${h}/`), [`${h}/${dump}`, `${h}/${dump}.sha256`], `${h}: both files on the S3 server`);
    const remoteSum = sha256(await s3.object(`${h}/${dump}`));
    t.equal(`${remoteSum}  ${dump}\n`, (await s3.object(`${h}/${dump}.sha256`)).toString(), `${h}: the uploaded dump has the published checksum`);
  }
  t.notOk(leaks(dry) || leaks(real), 'the storage keys appear in no output and no report');
  t.match(dry.stdout, /\+access_key_id = \*\*\*\n\s+\+secret_access_key = \*\*\*/, 'the config diff shows them masked');

  const again = await nightly();
  t.equal(again.code, 0);
  t.same(changedSteps(again.report).lab2, ['postgres.dump app', 'rclone.copy /var/backups/postgresql → s3:backups/lab2', 'rclone.check /var/backups/postgresql ↔ s3:backups/lab2'], 'second run: only the backup itself acts');
  t.equal(dumpsOf(await localFiles('lab2')).length, 2);
  t.same(hook.posts, [], 'nothing failed: no webhook call');
});

t.test('restore drill: the newest verified backup restored into a scratch database has the same row counts', async (t) => {
  const day = new Date().toISOString().slice(0, 10).replace(/-/g, '');
  const scratch = `app_restore_drill_${day}`;
  const dry = await restore('--limit', 'lab1', '--dry-run');
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout.slice(-2000) });
  const newest = dumpsOf(await localFiles('lab1')).at(-1) as string;
  t.same(changedSteps(dry.report).lab1, [`postgres.restore ${newest} → ${scratch}`]);
  t.equal((await lab.ssh('lab1', `cd / && runuser -u postgres -- psql -XAtq -d ${scratch} -c 'SELECT 1'`)).code, 2, 'the dry-run created nothing');

  const real = await restore('--limit', 'lab1');
  t.equal(real.code, 0, 'exit code', { stdout: real.stdout.slice(-3000), stderr: real.stderr });
  // The restored copy's row counts exist only once the restore ran.
  t.same(plannedSteps(real.report), predicted(dry.report, real.report, { lab1: [`postgres.compareRowCounts ${scratch} = app`] }));
  t.same(await counts('lab1', scratch), TABLES, 'the scratch database holds every row (counted on the host)');
  t.same(await counts('lab1', 'app'), TABLES);
  t.match(real.stdout, new RegExp(`lab1: app ← ${newest} \\(local\\) restored into ${scratch}\\n.*\\n\\s+audit\\.log\\s+3000\\s+3000\\s+=\\n\\s+public\\.customers\\s+5000\\s+5000\\s+=\\n\\s+public\\.orders\\s+12000\\s+12000\\s+=\\n\\s+all 3 table\\(s\\) match`));

  const twice = await restore('--limit', 'lab1');
  t.equal(twice.code, 2, 'a second drill into the same database is refused');
  t.match(failedStep(twice, 'lab1')?.error?.reason, `database ${scratch} already exists; restoring into it would mix data`);

  // lab2 lost its local backups: the newest comes from the remote, checked against its sha256.
  await sh1('lab2', `rm -f ${DIR}/*`);
  const fetched = await restore('--limit', 'lab2', '--into', 'app_copy', '--drop-after');
  t.equal(fetched.code, 0, 'restore from the remote', { stdout: fetched.stdout.slice(-3000), stderr: fetched.stderr });
  t.match(fetched.stdout, /lab2: app ← app-\d{8}T\d{6}Z\.dump \(fetched from the remote\) restored into app_copy\n[\s\S]*all 3 table\(s\) match/);
  t.equal(dumpsOf(await localFiles('lab2')).length, 1, 'the fetched dump is kept on the host');
  t.equal((await lab.ssh('lab2', `cd / && runuser -u postgres -- psql -XAtq -d app_copy -c 'SELECT 1'`)).code, 2, '--drop-after dropped the copy');
  t.notOk(leaks(fetched));
});

t.test('a truncated dump is caught by the full read: not renamed, not uploaded, exit 2, the webhook names host and step', async (t) => {
  // A pg_dump earlier in PATH that cuts its output short and still exits 0.
  await sh1(
    'lab1',
    `cat > /usr/local/bin/pg_dump <<'EOF'
#!/bin/sh
/usr/bin/pg_dump "$@" > /var/tmp/pg_dump.full || exit $?
head -c $(( $(stat -c %s /var/tmp/pg_dump.full) * 6 / 10 )) /var/tmp/pg_dump.full
EOF
chmod 755 /usr/local/bin/pg_dump`,
  );
  t.teardown(() => lab.ssh('lab1', 'rm -f /usr/local/bin/pg_dump /var/tmp/pg_dump.full /var/tmp/truncated.dump'));
  // Why the full read: the table of contents of a truncated archive still lists fine.
  const proof = await sh1('lab1', `cd / && runuser -u postgres -- pg_dump -Fc -d app > /var/tmp/truncated.dump; pg_restore --list /var/tmp/truncated.dump >/dev/null; echo "list $?"; pg_restore -f /dev/null /var/tmp/truncated.dump 2>/dev/null; echo "full read $?"`);
  t.equal(proof, 'list 0\nfull read 1\n', 'pg_restore --list accepts the truncated file; only a full read fails');

  const before = await localFiles('lab1');
  const keysBefore = await s3.keys('lab1/');
  hook.clear();
  const run = await nightly();
  t.equal(run.code, 2, 'exit code 2');
  t.same(Object.fromEntries((run.report?.hosts ?? []).map((h) => [h.name, h.status])), { lab1: 'failed', lab2: 'changed' }, 'the other host is backed up');
  const step = failedStep(run, 'lab1');
  t.equal(step?.name, 'postgres.dump app');
  t.match(step?.error?.stderrTail, /could not read from input file: end of file\ntackle: verification failed: pg_restore could not read the whole dump/);
  t.same(await localFiles('lab1'), before, 'no new file: nothing renamed, no partial left');
  t.same(await s3.keys('lab1/'), keysBefore, 'nothing uploaded');
  t.equal((await localFiles('lab2')).length, 4, 'lab2 has its new dump');
  const [post] = await hook.waitFor(1);
  t.equal(hook.posts.length, 1);
  t.equal(post?.contentType, 'application/json');
  const text = (JSON.parse(post?.body ?? '{}') as { text?: string }).text ?? '';
  t.match(text, /^tackle nightly-backup failed on 1 of 2 host\(s\)/);
  t.match(text, /• lab1: step `postgres\.dump app` failed: command exited with code 1: tackle: verification failed: pg_restore could not read the whole dump/);
  t.notMatch(text, /lab2/);
  t.notOk(text.includes(s3.secretAccessKey) || text.includes(s3.accessKeyId) || (post?.body ?? '').includes(s3.secretAccessKey), 'no key in the webhook message');
});

/** Verified fake backups of `db` in `dir` on `host`, dated `days` ago (`touch -d`), plus extra files. */
async function seed(host: string, dir: string, entries: Array<{ name: string; days: number; verified?: boolean }>): Promise<void> {
  const lines = entries.map(({ name, days, verified = true }) => {
    const when = `'${days} days ago'`;
    const sum = verified ? ` && sha256sum ${name} | sed 's/ .*/  ${name}/' > ${name}.sha256 && touch -d ${when} ${name}.sha256` : '';
    return `printf 'not a real dump %s' ${name} > ${name} && touch -d ${when} ${name}${sum}`;
  });
  await sh1(host, `mkdir -p ${dir} && cd ${dir} && ${lines.join(' && ')}`);
}

t.test('with the S3 server down the new local backup stays, no retention runs anywhere, exit 2, webhook called', async (t) => {
  // Old backups that retention would delete if it ran.
  await seed('lab1', DIR, [
    { name: 'app-20250101T020000Z.dump', days: 300 },
    { name: 'app-20250102T020000Z.dump', days: 299 },
  ]);
  const before = await localFiles('lab1');
  const keysBefore = await s3.keys();
  await s3.stop();
  t.teardown(() => s3.start());
  hook.clear();
  const run = await nightly();
  t.equal(run.code, 2);
  for (const h of hosts) {
    t.equal(failedStep(run, h)?.name, `rclone.copy /var/backups/postgresql → s3:backups/${h}`, `${h}: the upload failed`);
    t.notOk(run.report?.hosts.find((x) => x.name === h)?.steps.some((s) => /prune/.test(s.name)), `${h}: no retention step ran`);
  }
  const after = await localFiles('lab1');
  t.same(after.filter((n) => !before.includes(n)).length, 2, 'the new dump and its checksum are published locally');
  t.ok(before.every((n) => after.includes(n)), 'every old file is still there');
  t.same(dumpsOf(after.filter((n) => !before.includes(n))).length, 1);
  t.equal(await sh1('lab1', `cd ${DIR} && sha256sum -c ${dumpsOf(after.filter((n) => !before.includes(n)))[0]}.sha256 >/dev/null && echo ok`), 'ok\n', 'and it is verified');
  await s3.start();
  t.same(await s3.keys(), keysBefore, 'nothing was deleted on the remote');
  const [post] = await hook.waitFor(1);
  const text = (JSON.parse(post?.body ?? '{}') as { text: string }).text;
  t.match(text, /failed on 2 of 2 host\(s\)/);
  t.match(text, /• lab1: step `rclone\.copy \/var\/backups\/postgresql → s3:backups\/lab1` failed: command exited with code 1: .*connection refused/);
  t.match(text, /• lab2: step `rclone\.copy/);
});

t.test('retention on both sides keeps exactly the expected set, never fewer than 3 verified; the dry-run predicted it', async (t) => {
  await sh1('lab1', `rm -f ${DIR}/* && rclone --config /root/.config/rclone/rclone.conf delete s3:backups/lab1`);
  t.same(await s3.keys('lab1/'), []);
  // Local: 7 days, at least 3 verified.
  await seed('lab1', DIR, [
    { name: 'app-20261101T020000Z.dump', days: 2 }, // young: kept
    { name: 'app-20261021T020000Z.dump', days: 10 }, // old, but among the newest 3 verified: kept
    { name: 'app-20261019T020000Z.dump', days: 12 }, // old: removed
    { name: 'app-20261030T020000Z.dump', days: 3, verified: false }, // unverified but young: kept
    { name: 'app-20261011T020000Z.dump', days: 20, verified: false }, // unverified and old: removed
    { name: 'app-20261020T020000Z.dump.partial', days: 9, verified: false }, // a failed run's leftover: removed
    { name: 'crm-20260901T020000Z.dump', days: 40 }, // the only backup of crm: kept
    { name: 'notes.txt', days: 100, verified: false }, // not a backup: never touched
  ]);
  // Remote: 30 days, at least 3 verified; uploaded with rclone, which keeps the backdated mtimes.
  const seedDir = '/var/tmp/remote-seed';
  await seed('lab1', seedDir, [
    { name: 'app-20261010T020000Z.dump', days: 10 },
    { name: 'app-20260920T020000Z.dump', days: 35 },
    { name: 'app-20260915T020000Z.dump', days: 40 },
    { name: 'app-20260910T020000Z.dump', days: 45 },
    { name: 'app-20260905T020000Z.dump', days: 50, verified: false },
    { name: 'README', days: 100, verified: false },
  ]);
  await sh1('lab1', `rclone --config /root/.config/rclone/rclone.conf copy ${seedDir} s3:backups/lab1 && rm -rf ${seedDir}`);

  const dry = await nightly('--limit', 'lab1', '--dry-run');
  t.equal(dry.code, 0);
  const real = await nightly('--limit', 'lab1');
  t.equal(real.code, 0, 'exit code', { stdout: real.stdout.slice(-3000) });
  t.same(plannedSteps(real.report), plannedSteps(dry.report));
  const removals = (run: CliRun) => run.report?.hosts[0]?.steps.filter((s) => /prune/.test(s.name)).map((s) => `${s.name}: ${s.summary?.replace(/; keep .*/, '')}`);
  t.same(removals(real), removals(dry), 'the dry-run named the same removals, counting the dump it had not made yet');
  t.same(removals(real), [
    'postgres.prune /var/backups/postgresql: remove 3 backup(s): app-20261020T020000Z.dump (incomplete, older than 7 days), app-20261019T020000Z.dump (older than 7 days), app-20261011T020000Z.dump (unverified, older than 7 days)',
    'rclone.prune s3:backups/lab1: remove 3 backup(s): app-20260915T020000Z.dump (older than 30 days), app-20260910T020000Z.dump (older than 30 days), app-20260905T020000Z.dump (unverified, older than 30 days)',
  ]);

  const seeded = ['app-20261101T020000Z.dump', 'app-20261021T020000Z.dump', 'app-20261030T020000Z.dump'];
  const [fresh] = dumpsOf(await localFiles('lab1')).filter((n) => !seeded.includes(n));
  t.ok(fresh, 'the run made a new dump');
  t.same(await localFiles('lab1'), [
    'app-20261021T020000Z.dump',
    'app-20261021T020000Z.dump.sha256',
    'app-20261030T020000Z.dump',
    'app-20261101T020000Z.dump',
    'app-20261101T020000Z.dump.sha256',
    fresh,
    `${fresh}.sha256`,
    'crm-20260901T020000Z.dump',
    'crm-20260901T020000Z.dump.sha256',
    'notes.txt',
  ].sort());
  t.same(await s3.keys('lab1/'), [
    'lab1/README',
    'lab1/app-20260920T020000Z.dump',
    'lab1/app-20260920T020000Z.dump.sha256',
    'lab1/app-20261010T020000Z.dump',
    'lab1/app-20261010T020000Z.dump.sha256',
    `lab1/${fresh}`,
    `lab1/${fresh}.sha256`,
  ].sort());

  // Everything old: retention keeps the newest 3 verified whatever the dates say.
  await sh1('lab1', `cd ${DIR} && touch -d '90 days ago' * && rm -f crm-* notes.txt app-20261030T020000Z.dump`);
  const floor = await nightly('--limit', 'lab1');
  t.equal(floor.code, 0);
  t.equal(dumpsOf(await localFiles('lab1')).length, 3, 'three verified dumps stay locally');
  t.equal((await s3.keys('lab1/')).filter((k) => k.endsWith('.dump')).length, 3, 'and three on the remote');
});
