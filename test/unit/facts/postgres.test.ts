import t from 'tap';
import { captured } from './captured.ts';
import { secret } from '../../../lib/command/command.ts';
import { checkTarget, describeTarget, dumpFiles, parseDatabases, parseDumpFiles, parseRowCounts, pgCommand, pgDatabases, pgRowCounts } from '../../../lib/facts/postgres.ts';

// Real outputs of these facts' commands on a lab host (Debian 12, PostgreSQL 15).
const sample = captured('postgres');

t.test('dumpFiles: regular files with size and mtime, NUL-separated; missing; not a directory', async (t) => {
  const listing = parseDumpFiles(sample('dumpFiles.directory'));
  t.equal(listing.kind, 'directory');
  if (listing.kind !== 'directory') return;
  const byName = Object.fromEntries(listing.files.map((f) => [f.name, f]));
  t.same(Object.keys(byName).sort(), ['app-20261101T020000Z.dump', 'app-20261101T020000Z.dump.sha256', 'app-20261120T020000Z.dump.partial', 'notes with space.txt'], 'the sub-directory is not listed');
  t.same(byName['app-20261101T020000Z.dump'], { name: 'app-20261101T020000Z.dump', size: 1, mtimeMs: Date.parse('2026-11-01T02:00:05Z') }, 'touch -d time to the millisecond');
  t.same(parseDumpFiles(sample('dumpFiles.missing')), { kind: 'missing' });
  t.throws(() => parseDumpFiles(sample('dumpFiles.notDirectory')), /cannot list the backup directory \(exit 2\): not a directory/);
  t.throws(() => parseDumpFiles({ stdout: 'directory\nbogus\0', stderr: '', exitCode: 0 }), /unexpected listing record/);
  t.equal(dumpFiles('/var/backups/pg').key, 'postgres.dumpFiles /var/backups/pg');
});

t.test('databases: a JSON list, or why the server cannot be asked', async (t) => {
  t.same(parseDatabases(sample('databases.ok')), { kind: 'databases', names: ['app', 'postgres', 'template0', 'template1'] });
  t.same(parseDatabases(sample('databases.serverDown')), {
    kind: 'unavailable',
    reason: 'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: No such file or directory Is the server running locally and accepting connections on that socket?',
  });
  t.match(parseDatabases(sample('databases.noPostgresUser')), { kind: 'unavailable', reason: /runuser: user postgres does not exist/ }, 'no PostgreSQL installed yet');
  t.throws(() => parseDatabases({ stdout: '{"a":1}\n', stderr: '', exitCode: 0 }), /unexpected database list/);
});

t.test('rowCounts: exact counts per table, missing database, no tables, server down', async (t) => {
  t.same(parseRowCounts(sample('rowCounts.ok')), { kind: 'counts', tables: { 'audit.log': 3000, 'public.customers': 5000, 'public.orders': 12000 } });
  t.same(parseRowCounts(sample('rowCounts.missing')), { kind: 'missing' });
  t.same(parseRowCounts(sample('rowCounts.empty')), { kind: 'counts', tables: {} });
  t.match(parseRowCounts(sample('rowCounts.serverDown')), { kind: 'unavailable', reason: /failed: No such file or directory/ });
});

t.test('pgCommand: on the host through runuser, in Docker through docker exec; the password masked', async (t) => {
  t.equal(pgCommand({}, 'pg_dump', ['-Fc', '-d', 'app']).toString(), 'runuser -u postgres -- pg_dump -Fc -d app');
  t.equal(pgCommand({ via: { kind: 'host', osUser: null }, connection: { host: 'db.internal', port: 5433, user: 'backup' } }, 'psql', ['-c', 'SELECT 1']).toString(), "psql -h db.internal -p 5433 -U backup -c 'SELECT 1'");
  t.equal(pgCommand({ via: { kind: 'docker', container: 'postgres' }, connection: { user: 'postgres' } }, 'pg_dump', ['-Fc', '-d', 'app']).toString(), 'docker exec postgres pg_dump -U postgres -Fc -d app');
  t.equal(pgCommand({ via: { kind: 'docker', container: 'pg', user: 'postgres' } }, 'pg_restore', ['-f', '/dev/null'], { stdin: true }).toString(), 'docker exec -i -u postgres pg pg_restore -f /dev/null');
  const withPassword = pgCommand({ via: { kind: 'docker', container: 'pg' }, connection: { password: secret("s3cr't") } }, 'psql', ['-l']);
  t.equal(withPassword.toString(), 'PGPASSWORD=*** docker exec -e PGPASSWORD pg psql -l', 'docker gets the name only; the value stays in the environment');
  t.equal(withPassword.reveal(), `PGPASSWORD='s3cr'\\''t' docker exec -e PGPASSWORD pg psql -l`);
  t.equal(pgCommand({ connection: { password: secret('x') } }, 'psql', ['-l']).toString(), 'PGPASSWORD=*** runuser -u postgres -- psql -l');
});

t.test('targets: checked at once, described without the password', async (t) => {
  t.throws(() => checkTarget({ via: { kind: 'docker', container: '-it' } }, 'postgres.dump'), /postgres.dump: via.container must be a container name/);
  t.throws(() => checkTarget({ connection: { port: 70000 } }, 'x'), /connection.port must be a port number/);
  t.throws(() => checkTarget({ via: { kind: 'podman' } as never }, 'x'), /via.kind must be 'host' or 'docker'/);
  t.equal(describeTarget({}), 'host as postgres');
  t.equal(describeTarget({ via: { kind: 'docker', container: 'pg' }, connection: { user: 'postgres', host: 'localhost', password: secret('x') } }), 'docker pg postgres@localhost');
  t.equal(pgDatabases({ connection: { password: secret('x') } }).key, 'postgres.databases host as postgres', 'the cache key holds no secret');
  t.equal(pgRowCounts({ via: { kind: 'docker', container: 'pg' } }, 'app').key, 'postgres.rowCounts docker pg app');
  t.match(pgRowCounts({}, 'app').command.toString(), /^cd \/ && runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d app -c 'SELECT coalesce\(json_object_agg/);
});
