// Metrics for Prometheus end to end on one lab host with a real PostgreSQL (two databases), a real
// node_exporter (Debian's prometheus-node-exporter) and s3rver on the lab bridge: the nightly
// backup and the health report run through their CLIs with --prometheus, and every assertion
// parses the written file with a strict reader of the exposition format and compares it with
// the bucket's objects, the host's node_exporter answer, or the health report's JSON.
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { apt, defineTask, openConnection, runTask, sh, shell, type Inventory } from '../../lib/index.ts';
import { run } from '../../lab/exec.ts';
import { startS3 } from '../../lab/s3.ts';
import { withLab } from '../../lab/lab.ts';
import { parseExposition, sampleValue, type Family } from '../support/exposition.ts';
import { changedSteps, labInventory, runTaskCli, plannedSteps, predicted } from './support/cli.ts';

const lab = await withLab(t, 1);
const s3 = await startS3(lab.bridgeAddress, 'backups');
t.teardown(() => s3.close());
const HOST = 'lab1';
const DATABASES = ['app', 'shop'];
const TEXTFILE_DIR = '/var/lib/prometheus/node-exporter';

// PostgreSQL with two small databases, and node_exporter reading its textfile directory.
const setupTask = defineTask({
  name: 'metrics-lab',
  async run(host) {
    await host.run(apt.packages({ names: ['postgresql'] }));
    // Without its recommended collectors, whose timers would write their own files beside ours.
    await host.run(
      shell({
        name: 'node_exporter',
        command: sh`DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus-node-exporter`,
        unless: sh`dpkg -s prometheus-node-exporter >/dev/null 2>&1`,
      }),
    );
    await host.run(
      shell({
        name: 'sample databases',
        command: sh`cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1`,
        stdin: DATABASES.map((db) => `CREATE DATABASE ${db};\n\\c ${db}\nCREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g;\n`).join(''),
        unless: sh`cd / && runuser -u postgres -- psql -XAtq -d shop -c 'SELECT 1'`,
      }),
    );
  },
});
const plain = (await import(await labInventory(lab))).default as Inventory;
const setup = await runTask(setupTask, [...plain.hosts.values()], {
  connect: (h) => openConnection(h, plain, { home: homedir(), localUser: 'root', acceptNewHostKeys: false }),
});
for (const h of setup.hosts) if (h.status === 'failed' || h.status === 'unreachable') throw new Error(`lab setup failed on ${h.name}: ${h.error?.message}`);

const backup = { databases: DATABASES, remote: { name: 's3', provider: 'Other', endpoint: s3.endpoint, bucket: 'backups', retries: 1, lowLevelRetries: 1 } };
const inventory = await labInventory(lab, { [HOST]: { vars: { backup, health: { services: ['postgresql'] } } } });
const env = { BACKUP_ACCESS_KEY_ID: s3.accessKeyId, BACKUP_SECRET_ACCESS_KEY: s3.secretAccessKey };
const dir = await mkdtemp(join(tmpdir(), 'tackle-metrics-'));
const backupProm = join(dir, 'tackle_backup.prom');
const nightly = (...args: string[]) => runTaskCli('scripts/nightly-backup.ts', ['--inventory', inventory, '--prometheus', backupProm, ...args], env);

/** Runs `fn` and returns its result with the Unix seconds just before and after it. */
async function timed<T>(fn: () => Promise<T>): Promise<{ result: T; from: number; to: number }> {
  const from = Date.now() / 1000;
  const result = await fn();
  return { result, from, to: Date.now() / 1000 };
}
const ssh = async (command: string): Promise<string> => {
  const r = await lab.ssh(HOST, command);
  if (r.code !== 0) throw new Error(`${command}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
};
/** The value node_exporter on the host serves for a series, read over HTTP on the host. */
const scraped = async (series: string): Promise<string | undefined> => {
  const text = await ssh('for i in $(seq 50); do curl -sf http://127.0.0.1:9100/metrics && exit 0; sleep 0.2; done; exit 1');
  return text.split('\n').find((l) => l.startsWith(`${series} `))?.slice(series.length + 1);
};
const at = (f: Map<string, Family>, database: string) => sampleValue(f, 'tackle_backup_last_verified_upload_timestamp_seconds', { host: HOST, database });
const size = (f: Map<string, Family>, database: string) => sampleValue(f, 'tackle_backup_last_verified_upload_size_bytes', { host: HOST, database });

let first: Map<string, Family>;

t.test('a verified night: per database the upload time within the run and the size of the object in the bucket, on the controller and in node_exporter', async (t) => {
  const dry = await nightly('--dry-run');
  t.equal(dry.code, 0, 'dry-run exit code', { stdout: dry.stdout.slice(-3000), stderr: dry.stderr });
  t.same(await readdir(dir), [], 'a dry-run writes no metrics file');
  t.equal((await lab.ssh(HOST, `ls -A ${TEXTFILE_DIR}`)).stdout, '', 'nor on the host');

  const { result, from, to } = await timed(() => nightly());
  t.equal(result.code, 0, 'exit code', { stdout: result.stdout.slice(-3000), stderr: result.stderr });
  // A host without a backup yet: the listings retention reads are of a directory and a remote this run sets up.
  const fresh = ['postgres.prune /var/backups/postgresql', `rclone.prune s3:backups/${HOST}`];
  t.same(plannedSteps(result.report), predicted(dry.report, result.report, { [HOST]: fresh }), 'the dry-run predicted every step it could know');
  t.ok(changedSteps(result.report)[HOST]?.includes(`shell node_exporter textfile ${TEXTFILE_DIR}/tackle_backup.prom`), "among them the host's textfile");
  first = parseExposition(await readFile(backupProm, 'utf8'));
  t.same([...first.keys()].sort(), [
    'tackle_backup_last_run_success',
    'tackle_backup_last_run_timestamp_seconds',
    'tackle_backup_last_verified_upload_size_bytes',
    'tackle_backup_last_verified_upload_timestamp_seconds',
  ]);
  for (const [name, f] of first) t.match(f, { type: 'gauge', help: /\w/ }, `${name} has HELP and TYPE gauge`);
  const keys = await s3.keys(`${HOST}/`);
  for (const db of DATABASES) {
    const key = keys.find((k) => new RegExp(`^${HOST}/${db}-\\d{8}T\\d{6}Z\\.dump$`).test(k));
    t.ok(key, `${db}: its dump is in the bucket`);
    const when = at(first, db) ?? NaN;
    t.ok(when >= from && when <= to, `${db}: verified at ${when}, within the run [${from}, ${to}]`);
    t.equal(size(first, db), (await s3.object(key as string)).length, `${db}: the size is the object's in the bucket`);
  }
  t.equal(sampleValue(first, 'tackle_backup_last_run_success', { host: HOST }), 1);
  const ran = sampleValue(first, 'tackle_backup_last_run_timestamp_seconds', { host: HOST }) ?? NaN;
  t.ok(ran >= from && ran <= to, 'the run is dated within it');

  // The host's own node_exporter serves the same figures, and read the file without error.
  const hostText = await ssh(`cat ${TEXTFILE_DIR}/tackle_backup.prom`);
  const hostFile = parseExposition(hostText);
  for (const db of DATABASES) {
    t.equal(at(hostFile, db), at(first, db), `${db}: the host's file has the same time`);
    t.equal(Number(await scraped(`tackle_backup_last_verified_upload_size_bytes{database="${db}",host="${HOST}"}`)), size(first, db), `${db}: node_exporter serves its size`);
  }
  t.equal(await scraped('node_textfile_scrape_error'), '0', 'node_exporter read every textfile');
  t.equal(await ssh(`stat -c %a ${TEXTFILE_DIR}/tackle_backup.prom`), '644\n', 'node_exporter (its own user) can read it');
  t.same((await ssh(`ls -A ${TEXTFILE_DIR}`)).split('\n').filter((n) => n.startsWith('.')), [], 'no temporary file left on the host');
  t.same((await readdir(dir)).sort(), ['tackle_backup.prom'], 'nor on the controller');
});

t.test('a failing night (S3 down) keeps the last verified upload and says the run failed', async (t) => {
  const hostBefore = await ssh(`cat ${TEXTFILE_DIR}/tackle_backup.prom`);
  await s3.stop();
  t.teardown(() => s3.start());
  const { result, from, to } = await timed(() => nightly());
  t.equal(result.code, 2, 'exit code 2', { stdout: result.stdout.slice(-3000), stderr: result.stderr });
  const after = parseExposition(await readFile(backupProm, 'utf8'));
  for (const db of DATABASES) {
    t.equal(at(after, db), at(first, db), `${db}: the last success keeps its time`);
    t.equal(size(after, db), size(first, db), `${db}: and its size`);
  }
  t.equal(sampleValue(after, 'tackle_backup_last_run_success', { host: HOST }), 0, 'the last run failed');
  const ran = sampleValue(after, 'tackle_backup_last_run_timestamp_seconds', { host: HOST }) ?? NaN;
  t.ok(ran >= from && ran <= to, 'the failed run is dated within it');
  t.equal(await ssh(`cat ${TEXTFILE_DIR}/tackle_backup.prom`), hostBefore, "the host's file still holds the last verified upload");
});

t.test('health --prometheus writes its figures and severities, matching its JSON report', async (t) => {
  const healthProm = join(dir, 'tackle_health.prom');
  const r = await run(process.execPath, ['--import', 'tsx', 'scripts/health.ts', '--inventory', inventory, '--json', '-', '--prometheus', healthProm], { timeoutMs: 120_000 });
  t.ok([0, 3].includes(r.code), 'exit code ok or warning', { stdout: r.stdout.slice(-3000), stderr: r.stderr });
  const report = JSON.parse(r.stdout) as { hosts: Array<{ data?: { host: string; severity: string; checks: Array<{ check: string; subject: string; value: string; severity: string }> } }> };
  const f = parseExposition(await readFile(healthProm, 'utf8'));
  const rank = { ok: 0, warning: 1, critical: 2 } as Record<string, number>;
  const host = report.hosts[0]?.data;
  t.equal(sampleValue(f, 'tackle_health_up', { host: HOST }), 1);
  t.equal(sampleValue(f, 'tackle_health_severity', { host: HOST }), rank[host?.severity ?? '']);
  for (const c of host?.checks ?? []) t.equal(sampleValue(f, 'tackle_health_check_severity', { host: HOST, check: c.check, subject: c.subject }), rank[c.severity], `severity of ${c.check} ${c.subject}`);
  const root = host?.checks.find((c) => c.check === 'disk' && c.subject === '/');
  t.equal(sampleValue(f, 'tackle_health_disk_used_ratio', { host: HOST, mount: '/' }), Number(/^([\d.]+) %/.exec(root?.value ?? '')?.[1]) / 100, 'disk / as in the report');
  const memory = sampleValue(f, 'tackle_health_memory_used_ratio', { host: HOST }) ?? NaN;
  t.ok(memory > 0 && memory < 1, `memory used ratio ${memory}`);
  t.equal(sampleValue(f, 'tackle_health_failed_units', { host: HOST }), 0);
  t.type(sampleValue(f, 'tackle_health_load5_per_cpu', { host: HOST }), 'number');
  t.equal(sampleValue(f, 'tackle_health_check_severity', { host: HOST, check: 'service', subject: 'postgresql' }), 0, 'postgresql is active');
});
