import t from 'tap';
import { secret } from '../../../lib/command/command.ts';
import { checkShape } from '../../../lib/inventory/vars.ts';
import { backupVars, cronVar, pgTargetOf, remoteOf, type BackupConfig } from '../../../lib/backup/config.ts';
import { nightlySteps } from '../../../lib/backup/nightly.ts';
import { chooseBackup, countTable, drillDatabase } from '../../../lib/backup/restore.ts';
import type { StoredFile } from '../../../lib/facts/files.ts';
import { groupBackups } from '../../../lib/ops/retention.ts';

const secrets = { accessKeyId: secret('KEYID'), secretAccessKey: secret('SECRETKEY') };
const config = (backup: Record<string, unknown>): BackupConfig => {
  const vars = checkShape(backupVars, { backup });
  if (!vars.backup) throw new Error('no backup var');
  return vars.backup;
};

t.test('backup vars: defaults filled in, mistakes named before any host is contacted', async (t) => {
  const cfg = config({ databases: ['app'], remote: { accountId: '0123456789abcdef0123456789abcdef', bucket: 'acme-backups' } });
  t.match(cfg, { dir: '/var/backups/postgresql', osUser: 'postgres', keepDays: 7, keepAtLeast: 3, noOwner: false, remote: { name: 'r2', provider: 'Cloudflare', region: 'auto', keepDays: 30, keepAtLeast: 3 } });
  t.same(remoteOf(cfg, 'db1'), { remote: 'r2', bucket: 'acme-backups', prefix: 'db1' });
  t.same(pgTargetOf(cfg), { via: { kind: 'host', osUser: 'postgres' } });
  t.same(pgTargetOf({ ...cfg, container: 'postgres', dbUser: 'postgres' }), { via: { kind: 'docker', container: 'postgres' }, connection: { user: 'postgres' } });
  t.throws(() => config({ databases: 'app', remote: { bucket: 'b' } }), /backup.databases must be an array/);
  t.throws(() => config({ databases: ['app'], remote: {} }), /backup.remote.bucket is missing/);
  t.throws(() => config({ databases: ['app'], remote: { bucket: 'b', provider: 'Backblaze' } }), /backup.remote.provider must be one of "Cloudflare"/);
  t.equal(checkShape(backupVars, {}).backup, undefined, 'a host without the var is not a database host');
  t.throws(() => cronVar().check('0 25 * * *', 'backupSchedule.cron'), /backupSchedule.cron must be a valid cron expression \(schedule: cron expression "0 25 \* \* \*" is invalid: Constraint error/);
  t.equal(cronVar().check('0 2 * * *', 'x'), '0 2 * * *');
});

t.test('nightly steps: setup, dump each database, upload, verify, then local and remote retention', async (t) => {
  const cfg = config({ databases: ['app', 'crm'], remote: { name: 's3', provider: 'Other', endpoint: 'http://10.200.0.1:4568', bucket: 'backups', retries: 1 } });
  const steps = nightlySteps(cfg, { host: 'db1', now: new Date('2026-11-22T02:00:00Z'), secrets });
  t.same(
    steps.map((s) => s.name),
    [
      'apt.packages rclone',
      'rclone.remote s3',
      'files.directory /var/backups/postgresql',
      'postgres.dump app',
      'postgres.dump crm',
      'rclone.copy /var/backups/postgresql → s3:backups/db1',
      'rclone.check /var/backups/postgresql ↔ s3:backups/db1',
      'postgres.prune /var/backups/postgresql',
      'rclone.prune s3:backups/db1',
    ],
  );
  t.equal(steps[5]?.plan({} as never)?.summary, 'upload app-20261122T020000Z.dump, app-20261122T020000Z.dump.sha256, crm-20261122T020000Z.dump, crm-20261122T020000Z.dump.sha256 to s3:backups/db1');
  t.notMatch(JSON.stringify(steps.map((s) => s.plan)), /SECRETKEY/);
});

const DAY = 86_400_000;
const NOW = Date.parse('2026-11-22T02:00:00Z');
const files = (...entries: Array<[string, number, boolean?]>): StoredFile[] =>
  entries.flatMap(([name, days, verified = true]) => [{ name, size: 9, mtimeMs: NOW - days * DAY }, ...(verified ? [{ name: `${name}.sha256`, size: 90, mtimeMs: NOW - days * DAY }] : [])]);

t.test('chooseBackup: newest verified, local first; by name; none', async (t) => {
  const local = groupBackups(files(['app-20261120T020000Z.dump', 2], ['app-20261121T020000Z.dump', 1, false]));
  const remote = groupBackups(files(['app-20261120T020000Z.dump', 2], ['app-20261119T020000Z.dump', 3], ['app-20261121T030000Z.dump', 1]));
  t.match(chooseBackup(local, remote, { database: 'app' }), { kind: 'remote', backup: { name: 'app-20261121T030000Z.dump' } }, 'the newest verified is on the remote only');
  t.match(chooseBackup(local, groupBackups(files(['app-20261120T020000Z.dump', 2])), { database: 'app' }), { kind: 'local', backup: { name: 'app-20261120T020000Z.dump' } }, 'the same backup: taken from the host');
  t.match(chooseBackup(local, remote, { database: 'app', name: 'app-20261119T020000Z.dump' }), { kind: 'remote' });
  t.same(chooseBackup(local, remote, { database: 'app', name: 'app-20261121T020000Z.dump' }), { kind: 'none', reason: 'no verified backup named app-20261121T020000Z.dump on the host or the remote' }, 'an unverified dump is never restored');
  t.same(chooseBackup([], undefined, { database: 'crm' }), { kind: 'none', reason: 'no verified backup of crm on the host (the remote could not be listed)' });
});

t.test('drill names and count tables', async (t) => {
  t.equal(drillDatabase('app', new Date('2026-11-22T23:59:00Z')), 'app_restore_drill_20261122');
  t.equal(drillDatabase('x'.repeat(63), new Date('2026-11-22T00:00:00Z')).length, 63);
  t.same(countTable({ kind: 'counts', tables: { 'public.a': 1, 'public.b': 2 } }, { kind: 'counts', tables: { 'public.a': 1 } }), [
    { table: 'public.a', source: 1, restored: 1 },
    { table: 'public.b', source: 2, restored: undefined },
  ]);
});
