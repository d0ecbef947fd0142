import t from 'tap';
import { secret } from '../../../lib/command/command.ts';
import { backupMetrics, BACKUP_METRICS, verifiedMetrics, type HostRun } from '../../../lib/backup/metrics.ts';
import { runNightly } from '../../../lib/backup/nightly.ts';
import { backupVars, type BackupVars } from '../../../lib/backup/config.ts';
import { checkShape } from '../../../lib/inventory/vars.ts';
import type { HostContext } from '../../../lib/engine/task.ts';
import { renderTextfile } from '../../../lib/metrics/textfile.ts';
import { parseExposition, sampleValue } from '../../support/exposition.ts';

const night1 = new Date('2026-11-29T02:00:30Z');
const night2 = new Date('2026-11-30T02:00:40Z');
const s = (d: Date) => d.getTime() / 1000;
const render = (runs: HostRun[], uploads: Parameters<typeof backupMetrics>[1], previous = '') => renderTextfile(backupMetrics(runs, uploads, previous));

t.test('a verified night: per database its time and size, per host the run', async (t) => {
  const text = render([{ host: 'db1', ok: true, at: night1, databases: ['app', 'shop'] }], [
    { host: 'db1', database: 'app', at: night1, bytes: 1234 },
    { host: 'db1', database: 'shop', at: night1, bytes: 99 },
  ]);
  const f = parseExposition(text);
  t.equal(sampleValue(f, BACKUP_METRICS.verifiedAt, { host: 'db1', database: 'shop' }), s(night1));
  t.equal(sampleValue(f, BACKUP_METRICS.verifiedBytes, { host: 'db1', database: 'app' }), 1234);
  t.equal(sampleValue(f, BACKUP_METRICS.runSuccess, { host: 'db1' }), 1);
  t.equal(sampleValue(f, BACKUP_METRICS.runAt, { host: 'db1' }), s(night1));
  t.same([...f.values()].map((x) => x.type), ['gauge', 'gauge', 'gauge', 'gauge']);
});

t.test('a failed night keeps the last verified upload and records the failure', async (t) => {
  const first = render([{ host: 'db1', ok: true, at: night1, databases: ['app', 'shop'] }], [
    { host: 'db1', database: 'app', at: night1, bytes: 1234 },
    { host: 'db1', database: 'shop', at: night1, bytes: 99 },
  ]);
  const f = parseExposition(render([{ host: 'db1', ok: false, at: night2, databases: ['app', 'shop'] }], [], first));
  t.equal(sampleValue(f, BACKUP_METRICS.verifiedAt, { host: 'db1', database: 'app' }), s(night1), 'the time of the last success stays');
  t.equal(sampleValue(f, BACKUP_METRICS.verifiedBytes, { host: 'db1', database: 'shop' }), 99);
  t.equal(sampleValue(f, BACKUP_METRICS.runSuccess, { host: 'db1' }), 0);
  t.equal(sampleValue(f, BACKUP_METRICS.runAt, { host: 'db1' }), s(night2));

  const unreachable = parseExposition(render([{ host: 'db1', ok: false, at: night2 }], [], first));
  t.equal(sampleValue(unreachable, BACKUP_METRICS.verifiedAt, { host: 'db1', database: 'shop' }), s(night1), 'an unreachable host keeps its figures');
  t.equal(sampleValue(unreachable, BACKUP_METRICS.runSuccess, { host: 'db1' }), 0, 'and is recorded as failed');
});

t.test('hosts left out (--limit) keep theirs; a database no longer backed up is dropped; hosts without backups get nothing', async (t) => {
  const first = render(
    [
      { host: 'db1', ok: true, at: night1, databases: ['app', 'old'] },
      { host: 'db2', ok: true, at: night1, databases: ['crm'] },
    ],
    [
      { host: 'db1', database: 'app', at: night1, bytes: 1 },
      { host: 'db1', database: 'old', at: night1, bytes: 2 },
      { host: 'db2', database: 'crm', at: night1, bytes: 3 },
    ],
  );
  const f = parseExposition(
    render(
      [
        { host: 'db1', ok: true, at: night2, databases: ['app'] },
        { host: 'web1', ok: true, at: night2 },
        { host: 'web2', ok: false, at: night2 },
      ],
      [{ host: 'db1', database: 'app', at: night2, bytes: 5 }],
      first,
    ),
  );
  t.equal(sampleValue(f, BACKUP_METRICS.verifiedAt, { host: 'db1', database: 'app' }), s(night2));
  t.equal(sampleValue(f, BACKUP_METRICS.verifiedBytes, { host: 'db1', database: 'app' }), 5);
  t.equal(sampleValue(f, BACKUP_METRICS.verifiedAt, { host: 'db1', database: 'old' }), undefined, 'old is no longer backed up');
  t.equal(sampleValue(f, BACKUP_METRICS.verifiedAt, { host: 'db2', database: 'crm' }), s(night1), 'db2 did not run');
  t.equal(sampleValue(f, BACKUP_METRICS.runAt, { host: 'db2' }), s(night1));
  t.same(f.get(BACKUP_METRICS.runSuccess)?.samples.map((x) => x.labels.host).sort(), ['db1', 'db2'], 'no sample for hosts never seen backing up');
});

t.test("a host's own file: its verified uploads only", async (t) => {
  const f = parseExposition(renderTextfile(verifiedMetrics([{ host: 'db1', database: 'app', at: night1, bytes: 7 }])));
  t.same([...f.keys()], [BACKUP_METRICS.verifiedAt, BACKUP_METRICS.verifiedBytes]);
});

/** A host that records the steps it is asked to run and answers the backup directory's listing. */
function fakeHost(dryRun: boolean, log: string[]): HostContext<BackupVars> {
  const vars = checkShape(backupVars, { backup: { databases: ['app', 'shop'], remote: { bucket: 'backups', provider: 'Other', endpoint: 'http://10.0.0.1:9000' } } });
  return {
    name: 'db1',
    groups: [],
    vars,
    dryRun,
    run: async (op) => {
      log.push(op.name);
      return 'changed';
    },
    runSteps: async (ops) => void log.push(...ops.map((op) => op.name)),
    fact: async <T>() => ({ kind: 'directory', files: [{ name: 'app-20261130T020000Z.dump', size: 4096, mtimeMs: 0 }, { name: 'shop-20261130T020000Z.dump', size: 512, mtimeMs: 0 }] }) as T,
    facts: () => Promise.reject(new TypeError('the backup reads its facts one at a time')),
  };
}

t.test('runNightly tells its hooks the databases, then the verified dumps between the remote check and retention', async (t) => {
  const ctx = { now: new Date('2026-11-30T02:00:00Z'), secrets: { accessKeyId: secret('k'), secretAccessKey: secret('s') } };
  const log: string[] = [];
  await runNightly(fakeHost(false, log), {
    ...ctx,
    onStart: (dbs) => void log.push(`start ${dbs.join(',')}`),
    onVerified: async (dumps) => void log.push(`verified ${dumps.map((d) => `${d.database}=${d.name}:${d.bytes}`).join(' ')}`),
  });
  const at = (pattern: RegExp) => log.findIndex((l) => pattern.test(l));
  t.equal(log[0], 'start app,shop');
  t.equal(log[at(/^verified/)], 'verified app=app-20261130T020000Z.dump:4096 shop=shop-20261130T020000Z.dump:512');
  t.equal(at(/^verified/), at(/^rclone\.check/) + 1, 'right after the remote check');
  t.ok(at(/^postgres\.prune/) > at(/^verified/), 'before retention');

  const dry: string[] = [];
  await runNightly(fakeHost(true, dry), { ...ctx, onVerified: async (dumps) => void dry.push(`verified ${dumps.map((d) => `${d.database}:${d.bytes}`).join(' ')}`) });
  t.equal(dry[dry.findIndex((l) => l.startsWith('rclone.check')) + 1], 'verified app:NaN shop:NaN', 'a dry-run is told the planned dumps, sizes unknown');
});
