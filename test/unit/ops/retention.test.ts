import t from 'tap';
import { backupStamp, checkPolicy, dumpName, groupBackups, newestVerified, parseDumpName, selectRetention, withNewFiles } from '../../../lib/ops/retention.ts';
import type { StoredFile } from '../../../lib/facts/files.ts';

const NOW = new Date('2026-11-22T02:00:00Z');
const DAY = 86_400_000;
/** A verified backup (dump + checksum) of `db` whose files are `days` old. */
const verified = (db: string, stamp: string, days: number): StoredFile[] => [
  { name: `${db}-${stamp}.dump`, size: 100, mtimeMs: NOW.getTime() - days * DAY },
  { name: `${db}-${stamp}.dump.sha256`, size: 80, mtimeMs: NOW.getTime() - days * DAY },
];
const file = (name: string, days: number): StoredFile => ({ name, size: 1, mtimeMs: NOW.getTime() - days * DAY });
const decide = (files: StoredFile[], keepDays = 7, keepAtLeast = 3) => {
  const r = selectRetention(groupBackups(files), { keepDays, keepAtLeast }, NOW);
  return { keep: r.keep.map((d) => d.backup.name).sort(), remove: r.remove.map((d) => d.backup.name).sort(), removeFiles: r.remove.flatMap((d) => d.backup.files).sort() };
};

t.test('names: stamps in UTC to the second, parsed back', async (t) => {
  t.equal(backupStamp(new Date('2024-03-01T02:00:07.999Z')), '20240301T020007Z');
  t.equal(dumpName('my-app', new Date('2024-03-01T02:00:07Z')), 'my-app-20240301T020007Z.dump');
  t.same(parseDumpName('my-app-20240301T020007Z.dump'), { database: 'my-app', stamp: '2024-03-01T02:00:07Z' });
  t.equal(parseDumpName('my-app-20240301T020007Z.dump.sha256'), undefined);
  t.equal(parseDumpName('app.dump'), undefined);
  t.throws(() => dumpName('../etc', NOW), /cannot be used in a file name/);
  t.throws(() => dumpName('-x', NOW), TypeError);
  t.throws(() => backupStamp(new Date('nope')), /not a valid Date/);
});

t.test('grouping: verified, unverified and incomplete backups; other files are not backups', async (t) => {
  const groups = groupBackups([
    ...verified('app', '20261120T020000Z', 2),
    file('app-20261121T020000Z.dump', 1),
    file('app-20261122T010000Z.dump.partial', 0),
    file('app-20261122T010000Z.dump.sha256.partial', 0),
    file('app-20261119T020000Z.dump.sha256', 3),
    file('notes.txt', 100),
    file('app.dump', 100),
  ]);
  const byName = Object.fromEntries(groups.map((g) => [g.name, g]));
  t.same(Object.keys(byName).sort(), ['app-20261119T020000Z.dump', 'app-20261120T020000Z.dump', 'app-20261121T020000Z.dump', 'app-20261122T010000Z.dump']);
  t.match(byName['app-20261120T020000Z.dump'], { state: 'verified', database: 'app', size: 100, files: ['app-20261120T020000Z.dump', 'app-20261120T020000Z.dump.sha256'] });
  t.match(byName['app-20261121T020000Z.dump'], { state: 'unverified' });
  t.match(byName['app-20261122T010000Z.dump'], { state: 'incomplete', files: ['app-20261122T010000Z.dump.partial', 'app-20261122T010000Z.dump.sha256.partial'] });
  t.match(byName['app-20261119T020000Z.dump'], { state: 'incomplete', size: 0 }, 'a checksum without its dump');
});

t.test('retention: N days, and always the newest K verified, per database', async (t) => {
  const files = [
    ...verified('app', '20261120T020000Z', 2),
    ...verified('app', '20261112T020000Z', 10),
    ...verified('app', '20261110T020000Z', 12),
    ...verified('app', '20261101T020000Z', 21),
    file('app-20261119T020000Z.dump', 3),
    file('app-20261102T020000Z.dump', 20),
    file('app-20261115T020000Z.dump.partial', 7.5),
    ...verified('crm', '20261001T020000Z', 52),
    file('notes.txt', 400),
  ];
  const r = decide(files);
  t.same(r.keep, ['app-20261110T020000Z.dump', 'app-20261112T020000Z.dump', 'app-20261119T020000Z.dump', 'app-20261120T020000Z.dump', 'crm-20261001T020000Z.dump']);
  t.same(r.remove, ['app-20261101T020000Z.dump', 'app-20261102T020000Z.dump', 'app-20261115T020000Z.dump']);
  t.same(r.removeFiles, ['app-20261101T020000Z.dump', 'app-20261101T020000Z.dump.sha256', 'app-20261102T020000Z.dump', 'app-20261115T020000Z.dump.partial']);
  t.notOk(r.removeFiles.includes('notes.txt'), 'other files are never touched');
});

t.test('retention never goes below K verified, whatever the dates say', async (t) => {
  const old = [...verified('app', '20250101T020000Z', 300), ...verified('app', '20250102T020000Z', 299), ...verified('app', '20250103T020000Z', 298), ...verified('app', '20250104T020000Z', 297)];
  t.same(decide(old).keep, ['app-20250102T020000Z.dump', 'app-20250103T020000Z.dump', 'app-20250104T020000Z.dump']);
  // Unverified newer dumps do not count towards K: the old verified ones stay.
  const withBad = [...old, file('app-20261121T020000Z.dump', 1), file('app-20261122T010000Z.dump.partial', 0)];
  t.same(decide(withBad, 0).keep, ['app-20250102T020000Z.dump', 'app-20250103T020000Z.dump', 'app-20250104T020000Z.dump'], 'keepDays 0: only the newest K verified');
  t.same(decide(withBad, 0).remove, ['app-20250101T020000Z.dump', 'app-20261121T020000Z.dump', 'app-20261122T010000Z.dump']);
  // A clock that jumped: dumps dated in the future are newest and kept.
  t.same(decide([...verified('app', '20301010T000000Z', -1000), ...old], 0, 1).keep, ['app-20301010T000000Z.dump']);
  t.same(decide([], 7, 3), { keep: [], remove: [], removeFiles: [] });
});

t.test('a listing with the new dumps: what a dump or an upload leaves for retention', async (t) => {
  const files = [...verified('app', '20261101T020000Z', 21), ...verified('app', '20261102T020000Z', 20), ...verified('app', '20261103T020000Z', 19)];
  t.same(decide(files).remove, [], 'three verified: all kept');
  const added = withNewFiles(files, ['app-20261122T020000Z.dump', 'app-20261122T020000Z.dump.sha256']);
  const r = selectRetention(groupBackups(added), { keepDays: 7, keepAtLeast: 3 }, NOW);
  t.same(r.remove.map((d) => d.backup.name), ['app-20261101T020000Z.dump'], 'the new dump pushes the oldest out');
  t.equal(added.find((f) => f.name === 'app-20261122T020000Z.dump')?.mtimeMs, Date.parse('2026-11-22T02:00:00Z'), 'a dump dates from its stamp');
  t.equal(withNewFiles(files, ['app-20261101T020000Z.dump']).length, files.length, 'a listed name is replaced, not added twice');
  t.equal(newestVerified(groupBackups(added), 'app')?.name, 'app-20261122T020000Z.dump');
  t.equal(newestVerified(groupBackups(added), 'crm'), undefined);
});

t.test('policy checks', async (t) => {
  t.throws(() => checkPolicy({ keepDays: 7, keepAtLeast: 0 }, 'postgres.prune'), /postgres.prune: keepAtLeast must be a whole number ≥ 1/);
  t.throws(() => checkPolicy({ keepDays: -1, keepAtLeast: 3 }, 'x'), /keepDays must be a number of days ≥ 0/);
  t.same(checkPolicy({ keepDays: 0.5, keepAtLeast: 1 }, 'x'), { keepDays: 0.5, keepAtLeast: 1 });
});
