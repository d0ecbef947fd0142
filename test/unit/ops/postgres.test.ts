import { createHash } from 'node:crypto';
import { chmodSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { secret } from '../../../lib/command/command.ts';
import { UNKNOWN, type Change, type Operation } from '../../../lib/ops/operation.ts';
import { TackleError } from '../../../lib/errors.ts';
import { dumpFiles, type DumpFiles, type PgDatabases, type RowCounts } from '../../../lib/facts/postgres.ts';
import { postgres } from '../../../lib/ops/postgres.ts';
import { runOp } from '../../support/run-op.ts';
import { tempDir } from '../../support/temp-dir.ts';

const AT = new Date('2026-11-22T02:00:00Z');
const commands = (change: Change | undefined): string[] => (change?.actions ?? []).map((a) => a.command.toString());
const planOf = (op: Operation, facts: Record<string, unknown> = {}): Change | undefined => op.plan(facts);
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof TackleError) return err.reason;
    throw err;
  }
  throw new Error('expected a refusal');
}

t.test('postgres.dump on the host: pg_dump to a partial file, then verify, checksum, publish', async (t) => {
  const op = postgres.dump({ database: 'app', dir: '/var/backups/postgresql/', at: AT });
  t.equal(op.name, 'postgres.dump app', 'the step name has no time in it: stable between a dry-run and the run');
  const change = planOf(op);
  t.equal(change?.summary, 'dump app (host as postgres) to /var/backups/postgresql/app-20261122T020000Z.dump, verify it by a full read, write its sha256, then publish');
  t.same(commands(change), [
    [
      'set -u',
      'cd / || exit 1',
      "[ -d /var/backups/postgresql ] || { printf 'tackle: backup directory %s does not exist\\n' /var/backups/postgresql >&2; exit 1; }",
      `for tackle_f in /var/backups/postgresql/app-20261122T020000Z.dump /var/backups/postgresql/app-20261122T020000Z.dump.sha256 /var/backups/postgresql/app-20261122T020000Z.dump.partial; do [ ! -e "$tackle_f" ] || { printf 'tackle: %s already exists; not overwriting it\\n' "$tackle_f" >&2; exit 1; }; done`,
      'tackle_part=/var/backups/postgresql/app-20261122T020000Z.dump.partial',
      `trap 'rm -f -- "$tackle_part"' EXIT`,
      "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM",
      'umask 077',
      'runuser -u postgres -- pg_dump -Fc -d app > /var/backups/postgresql/app-20261122T020000Z.dump.partial',
      'tackle_rc=$?',
      `[ "$tackle_rc" -eq 0 ] || { printf 'tackle: pg_dump failed (exit %s); nothing was published\\n' "$tackle_rc" >&2; exit 1; }`,
      'trap - EXIT',
    ].join('\n'),
    [
      'set -u',
      'cd / || exit 1',
      'tackle_part=/var/backups/postgresql/app-20261122T020000Z.dump.partial tackle_sum_part=/var/backups/postgresql/app-20261122T020000Z.dump.sha256.partial',
      `trap 'rm -f -- "$tackle_part" "$tackle_sum_part"' EXIT`,
      "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM",
      'umask 077',
      "[ -s /var/backups/postgresql/app-20261122T020000Z.dump.partial ] || { printf 'tackle: %s is missing or empty: nothing to verify\\n' /var/backups/postgresql/app-20261122T020000Z.dump.partial >&2; exit 1; }",
      'runuser -u postgres -- pg_restore -f /dev/null < /var/backups/postgresql/app-20261122T020000Z.dump.partial',
      'tackle_rc=$?',
      `[ "$tackle_rc" -eq 0 ] || { printf 'tackle: verification failed: pg_restore could not read the whole dump (exit %s): it is truncated or corrupt, so it was removed and not published\\n' "$tackle_rc" >&2; exit 1; }`,
      'tackle_sum=$(sha256sum < /var/backups/postgresql/app-20261122T020000Z.dump.partial) || exit 1',
      `printf '%s  %s\\n' "\${tackle_sum%% *}" app-20261122T020000Z.dump > /var/backups/postgresql/app-20261122T020000Z.dump.sha256.partial || exit 1`,
      'mv -fT -- /var/backups/postgresql/app-20261122T020000Z.dump.sha256.partial /var/backups/postgresql/app-20261122T020000Z.dump.sha256 || exit 1',
      'mv -fT -- /var/backups/postgresql/app-20261122T020000Z.dump.partial /var/backups/postgresql/app-20261122T020000Z.dump || exit 1',
      'trap - EXIT',
    ].join('\n'),
  ]);
  t.same(commands(planOf(op)), commands(change), 'a backup always acts: every plan has the same two commands');
});

t.test('postgres.dump through Docker: the same steps with docker exec, the dump streamed to the host', async (t) => {
  const op = postgres.dump({
    database: 'app',
    dir: '/srv/backups',
    at: AT,
    via: { kind: 'docker', container: 'postgres' },
    connection: { user: 'postgres', password: secret('pg-pass') },
    noOwner: true,
    excludeTables: ['audit.*', 'big table'],
    compress: 6,
  });
  const change = planOf(op);
  t.equal(change?.summary, 'dump app (docker postgres postgres@, no owner, excluding audit.*, big table) to /srv/backups/app-20261122T020000Z.dump, verify it by a full read, write its sha256, then publish');
  const [dump, verify] = commands(change);
  t.match(dump, "\nPGPASSWORD=*** docker exec -e PGPASSWORD postgres pg_dump -U postgres -Fc --no-owner -T 'audit.*' -T 'big table' -Z 6 -d app > /srv/backups/app-20261122T020000Z.dump.partial\ntackle_rc=$?\n");
  t.match(verify, '\nPGPASSWORD=*** docker exec -i -e PGPASSWORD postgres pg_restore -U postgres -f /dev/null < /srv/backups/app-20261122T020000Z.dump.partial\ntackle_rc=$?\n', 'pg_restore in the container reads the dump on stdin');
  t.notMatch(JSON.stringify(change), /pg-pass/, 'the password is masked in the plan');
  t.match(change?.actions[0]?.command.reveal(), /PGPASSWORD=pg-pass docker exec -e PGPASSWORD postgres pg_dump/);
  t.match(postgres.dump({ database: 'app', dir: '/b', at: AT, via: { kind: 'docker', container: 'pg', user: 'postgres' }, schemaOnly: true }).plan({})?.actions[0]?.command.toString(), 'docker exec -u postgres pg pg_dump -Fc --schema-only -d app > /b/app-20261122T020000Z.dump.partial');
});

t.test('postgres.dump refuses bad input at once', async (t) => {
  t.throws(() => postgres.dump({ database: 'a b', dir: '/b' }), /postgres.dump: database "a b" must be letters/);
  t.throws(() => postgres.dump({ database: 'app', dir: 'backups' }), /dir must be an absolute path/);
  t.throws(() => postgres.dump({ database: 'app', dir: '/b', compress: 10 }), /compress must be 0 to 9/);
  t.throws(() => postgres.dump({ database: 'app', dir: '/b', via: { kind: 'docker', container: '' } }), /via.container must be a container name/);
});

// ------------------------------------------------------------------ applied for real, with stand-in programs

/** A directory with stand-ins for pg_dump and pg_restore, put first in PATH for the test. */
function fakeBin(t: { teardown(fn: () => void): void }): string {
  const bin = tempDir('pgbin');
  // pg_dump writes an "archive" ending in END; FAKE_PG=truncate cuts it (exit 0), FAKE_PG=fail exits 3 after writing part.
  writeFileSync(
    join(bin, 'pg_dump'),
    '#!/bin/sh\nprintf "PGDMP-%s\\n" "$*"\ncase "$FAKE_PG" in truncate) exit 0;; fail) echo "pg_dump: error: connection lost" >&2; exit 3;; esac\necho END\n',
  );
  // pg_restore -f /dev/null reads the whole archive on stdin and fails, as the real one does, when it ends early.
  writeFileSync(join(bin, 'pg_restore'), '#!/bin/sh\ntail -n 1 | grep -qx END || { echo "pg_restore: error: could not read from input file: end of file" >&2; exit 1; }\n');
  chmodSync(join(bin, 'pg_dump'), 0o755);
  chmodSync(join(bin, 'pg_restore'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path}`;
  t.teardown(() => {
    process.env.PATH = path;
    delete process.env.FAKE_PG;
  });
  return bin;
}

const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

t.test('applied: a good dump is published with its checksum; the file names are final only at the end', async (t) => {
  fakeBin(t);
  const dir = tempDir('dump');
  const step = await runOp(postgres.dump({ database: 'app', dir, at: AT, via: { kind: 'host', osUser: null } }));
  t.equal(step.status, 'changed', JSON.stringify(step.error?.message));
  t.same(readdirSync(dir).sort(), ['app-20261122T020000Z.dump', 'app-20261122T020000Z.dump.sha256']);
  const dump = readFileSync(join(dir, 'app-20261122T020000Z.dump'));
  t.equal(dump.toString(), 'PGDMP--Fc -d app\nEND\n');
  t.equal(readFileSync(join(dir, 'app-20261122T020000Z.dump.sha256'), 'utf8'), `${sha(dump)}  app-20261122T020000Z.dump\n`, 'sha256sum -c format');
  const again = await runOp(postgres.dump({ database: 'app', dir, at: AT, via: { kind: 'host', osUser: null } }));
  t.equal(again.status, 'failed');
  t.match(again.error?.stderrTail, /app-20261122T020000Z.dump already exists; not overwriting it/);
  t.equal(readFileSync(join(dir, 'app-20261122T020000Z.dump')).toString(), dump.toString(), 'the published dump is untouched');
});

/** Applies a dump on this machine with the stand-ins behaving as `mode` says, into a new directory. */
async function applyDump(t: { teardown(fn: () => void): void }, mode: 'truncate' | 'fail') {
  fakeBin(t);
  process.env.FAKE_PG = mode;
  const dir = tempDir('dump');
  return { dir, step: await runOp(postgres.dump({ database: 'app', dir, at: AT, via: { kind: 'host', osUser: null } })) };
}

t.test('applied: a truncated dump (pg_dump exits 0) is caught by the full read and never published', async (t) => {
  const { dir, step } = await applyDump(t, 'truncate');
  t.equal(step.status, 'failed');
  t.match(step.error?.stderrTail, /could not read from input file: end of file\ntackle: verification failed: pg_restore could not read the whole dump \(exit 1\)/);
  t.same(readdirSync(dir), [], 'no final name, no checksum, no partial left');
});

t.test('applied: pg_dump failing after writing part of its output publishes nothing', async (t) => {
  const { dir, step } = await applyDump(t, 'fail');
  t.equal(step.status, 'failed');
  t.match(step.error?.stderrTail, /pg_dump: error: connection lost\ntackle: pg_dump failed \(exit 3\); nothing was published/);
  t.same(readdirSync(dir), []);
  const nodir = await runOp(postgres.dump({ database: 'app', dir: join(dir, 'missing'), at: AT, via: { kind: 'host', osUser: null } }));
  t.match(nodir.error?.stderrTail, /tackle: backup directory .*missing does not exist/);
});

// ------------------------------------------------------------------ retention

const DAY = 86_400_000;
const NOW = new Date('2026-11-22T02:00:00Z');
function listing(entries: Array<[string, number]>): DumpFiles {
  return { kind: 'directory', files: entries.map(([name, days]) => ({ name, size: 10, mtimeMs: NOW.getTime() - days * DAY })) };
}
const pair = (stamp: string, days: number): Array<[string, number]> => [
  [`app-${stamp}.dump`, days],
  [`app-${stamp}.dump.sha256`, days],
];

t.test('postgres.prune deletes what retention lets go, and nothing when all stay', async (t) => {
  const op = postgres.prune({ dir: '/var/backups/postgresql', now: NOW });
  t.equal(op.name, 'postgres.prune /var/backups/postgresql');
  const files = listing([...pair('20261121T020000Z', 1), ...pair('20261110T020000Z', 12), ...pair('20261109T020000Z', 13), ...pair('20261108T020000Z', 14), ['app-20261101T020000Z.dump', 21], ['README', 99]]);
  const change = planOf(op, { listing: files });
  t.same(commands(change), [
    'rm -f -- /var/backups/postgresql/app-20261108T020000Z.dump /var/backups/postgresql/app-20261108T020000Z.dump.sha256 /var/backups/postgresql/app-20261101T020000Z.dump',
  ]);
  t.equal(
    change?.summary,
    'remove 2 backup(s): app-20261108T020000Z.dump (older than 7 days), app-20261101T020000Z.dump (unverified, older than 7 days); keep 3 (7 days, at least the newest 3 verified)',
  );
  t.equal(planOf(op, { listing: listing([...pair('20261121T020000Z', 1), ...pair('20261110T020000Z', 12)]) }), undefined, 'two verified: both stay');
  t.equal(planOf(op, { listing: { kind: 'missing' } }), undefined, 'no directory yet: nothing to prune');
  // A dump planned before the prune says what it adds to the listing: the prune planned after it counts it.
  const before = listing([...pair('20261110T020000Z', 12), ...pair('20261109T020000Z', 13)]);
  const dumped = postgres.dump({ database: 'app', dir: '/b', at: NOW }).plan({})?.effects?.update?.[dumpFiles('/b').key] as ((l: DumpFiles) => DumpFiles) | undefined;
  const after = dumped?.(before);
  t.same((after?.kind === 'directory' ? after.files : []).slice(-2).map((f) => f.name), ['app-20261122T020000Z.dump', 'app-20261122T020000Z.dump.sha256'], 'the dump and its checksum join the listing');
  const prune = postgres.prune({ dir: '/b', now: NOW, keepDays: 7, keepAtLeast: 2 });
  t.same(commands(planOf(prune, { listing: after ?? before })), ['rm -f -- /b/app-20261109T020000Z.dump /b/app-20261109T020000Z.dump.sha256'], "the run's own new dump counts");
  t.equal(dumped?.({ kind: 'missing' }), UNKNOWN, 'no directory: what the dump leaves there is not predicted');
  // The prune says what it takes out of the listing; nothing else (the remote's listing after it stays planned).
  const pruned = planOf(prune, { listing: after ?? before });
  const left = (pruned?.effects?.update?.[dumpFiles('/b').key] as (l: DumpFiles) => DumpFiles)(after ?? before);
  t.same(left.kind === 'directory' ? left.files.map((f) => f.name).sort() : [], ['app-20261110T020000Z.dump', 'app-20261110T020000Z.dump.sha256', 'app-20261122T020000Z.dump', 'app-20261122T020000Z.dump.sha256']);
  t.equal(pruned?.effects?.writes, undefined);
  t.throws(() => postgres.prune({ dir: '/b', keepAtLeast: 0 }), /keepAtLeast must be a whole number ≥ 1/);
});

// ------------------------------------------------------------------ restore, databases, row counts

const dbs = (...names: string[]): PgDatabases => ({ kind: 'databases', names: ['postgres', 'template0', 'template1', ...names] });

t.test('postgres.restore checks the sha256, creates from template0, restores, drops on failure', async (t) => {
  const op = postgres.restore({ file: '/var/backups/postgresql/app-20261122T020000Z.dump', database: 'app_restore_drill_20261122' });
  t.equal(op.name, 'postgres.restore app-20261122T020000Z.dump → app_restore_drill_20261122');
  const change = planOf(op, { databases: dbs('app') });
  t.equal(change?.summary, 'create app_restore_drill_20261122 (host as postgres) and restore /var/backups/postgresql/app-20261122T020000Z.dump into it, after checking its sha256');
  t.same(commands(change), [
    [
      'set -u',
      'cd / || exit 1',
      "[ -f /var/backups/postgresql/app-20261122T020000Z.dump ] && [ -f /var/backups/postgresql/app-20261122T020000Z.dump.sha256 ] || { printf 'tackle: %s or its .sha256 is missing\\n' /var/backups/postgresql/app-20261122T020000Z.dump >&2; exit 1; }",
      "tackle_want=$(cut -d ' ' -f 1 < /var/backups/postgresql/app-20261122T020000Z.dump.sha256) && tackle_got=$(sha256sum < /var/backups/postgresql/app-20261122T020000Z.dump) || exit 1",
      'tackle_got=${tackle_got%% *}',
      `[ -n "$tackle_want" ] && [ "$tackle_want" = "$tackle_got" ] || { printf 'tackle: checksum mismatch for %s: expected %s, got %s; not restoring it\\n' /var/backups/postgresql/app-20261122T020000Z.dump "$tackle_want" "$tackle_got" >&2; exit 1; }`,
      'runuser -u postgres -- createdb -T template0 app_restore_drill_20261122 || exit 1',
      'runuser -u postgres -- pg_restore --exit-on-error -d app_restore_drill_20261122 < /var/backups/postgresql/app-20261122T020000Z.dump',
      'tackle_rc=$?',
      `if [ "$tackle_rc" -ne 0 ]; then runuser -u postgres -- dropdb --if-exists app_restore_drill_20261122; { printf 'tackle: pg_restore failed (exit %s); the half-restored database %s was dropped\\n' "$tackle_rc" app_restore_drill_20261122 >&2; exit 1; }; fi`,
    ].join('\n'),
  ]);
  t.equal(refusal(() => planOf(op, { databases: dbs('app', 'app_restore_drill_20261122') })), 'postgres.restore: database app_restore_drill_20261122 already exists; restoring into it would mix data: choose another database name, or replace it');
  const replace = postgres.restore({ file: '/b/app-20261122T020000Z.dump', database: 'copy', replace: true, noOwner: true, via: { kind: 'docker', container: 'pg' }, connection: { user: 'postgres' } });
  const replaced = planOf(replace, { databases: dbs('copy') });
  t.match(replaced?.summary, /^drop and re-create copy \(docker pg postgres@\)/);
  t.match(commands(replaced)[0], '\ndocker exec pg dropdb -U postgres --if-exists copy || exit 1\ndocker exec pg createdb -U postgres -T template0 copy || exit 1\ndocker exec -i pg pg_restore -U postgres --exit-on-error --no-owner -d copy < /b/app-20261122T020000Z.dump\n');
  t.ok(planOf(op, { databases: { kind: 'unavailable', reason: 'psql: not installed' } }), 'server unknown (dry-run before it is installed): planned');
});

t.test('applied: a dump whose checksum does not match is not restored', async (t) => {
  const dir = tempDir('restore');
  writeFileSync(join(dir, 'app-20261122T020000Z.dump'), 'PGDMP corrupted\n');
  writeFileSync(join(dir, 'app-20261122T020000Z.dump.sha256'), `${sha('PGDMP original\n')}  app-20261122T020000Z.dump\n`);
  const step = await runOp(postgres.restore({ file: join(dir, 'app-20261122T020000Z.dump'), database: 'x', via: { kind: 'host', osUser: null } }));
  t.equal(step.status, 'failed');
  t.match(step.error?.stderrTail, new RegExp(`tackle: checksum mismatch for .*: expected ${sha('PGDMP original\n')}, got ${sha('PGDMP corrupted\n')}; not restoring it`));
});

t.test('postgres.database creates or drops, once', async (t) => {
  const present = postgres.database({ name: 'scratch' });
  t.equal(present.name, 'postgres.database scratch');
  t.same(commands(planOf(present, { databases: dbs() })), ['cd / && runuser -u postgres -- createdb scratch']);
  t.equal(planOf(present, { databases: dbs('scratch') }), undefined);
  const absent = postgres.database({ name: 'scratch', state: 'absent' });
  t.equal(absent.name, 'postgres.database scratch absent');
  t.same(commands(planOf(absent, { databases: dbs('scratch') })), ['cd / && runuser -u postgres -- dropdb --if-exists scratch']);
  t.equal(planOf(absent, { databases: dbs() }), undefined);
  t.match(planOf(absent, { databases: { kind: 'unavailable', reason: 'no server' } })?.summary, 'drop database scratch (state unknown: no server)');
});

t.test('postgres.compareRowCounts: no change when equal, a failed step listing the differences', async (t) => {
  const op = postgres.compareRowCounts({ source: 'app', target: 'app_copy' });
  t.equal(op.name, 'postgres.compareRowCounts app_copy = app');
  const counts = (tables: Record<string, number>): RowCounts => ({ kind: 'counts', tables });
  t.equal(planOf(op, { before: counts({ 'public.a': 3, 'public.b': 0 }), after: counts({ 'public.a': 3, 'public.b': 0 }) }), undefined);
  t.equal(
    refusal(() => planOf(op, { before: counts({ 'public.a': 3, 'public.b': 5 }), after: counts({ 'public.a': 2 }) })),
    'row counts of app_copy differ from app: public.a: app 3, app_copy 2; public.b: app 5, app_copy missing',
  );
  t.equal(planOf(op, { before: counts({ 'public.a': 3 }), after: { kind: 'missing' } }), undefined, 'not restored yet (dry-run): nothing to compare');
  t.equal(refusal(() => planOf(op, { before: { kind: 'missing' }, after: counts({}) })), 'cannot count rows of app: no such database');
});
