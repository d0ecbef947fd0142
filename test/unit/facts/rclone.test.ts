import t from 'tap';
import { captured } from './captured.ts';
import { checkLocation, parseRemoteFiles, rcloneCommand, remoteFiles, remotePath } from '../../../lib/facts/rclone.ts';

// Real outputs of the remoteFiles command on a lab host (rclone 1.60) against s3rver.
const sample = captured('rclone');

t.test('remoteFiles: names, sizes and the mtimes rclone keeps in metadata', async (t) => {
  const listing = parseRemoteFiles(sample('files.listing'));
  t.equal(listing.kind, 'listing');
  if (listing.kind !== 'listing') return;
  t.same(
    listing.files.map((f) => f.name),
    ['app-20261122T030451Z.dump', 'app-20261122T030451Z.dump.sha256', 'full.dump', 'full.dump.sha256'],
  );
  t.same(listing.files[0], { name: 'app-20261122T030451Z.dump', size: 171883, mtimeMs: Date.parse('2026-11-22T03:04:51.993Z') });
  t.equal(listing.files[2]?.mtimeMs, Date.parse('2026-11-12T02:44:33.234Z'), 'a file uploaded after touch -d keeps its old mtime');
});

t.test('remoteFiles: empty, missing bucket, not set up, and a remote that does not answer', async (t) => {
  t.same(parseRemoteFiles(sample('files.empty')), { kind: 'listing', files: [] });
  t.same(parseRemoteFiles(sample('files.noBucket')), { kind: 'listing', files: [] }, 'nothing there to prune or restore');
  t.same(parseRemoteFiles(sample('files.noConfig')), { kind: 'unavailable', reason: 'the rclone config file does not exist' });
  t.same(parseRemoteFiles(sample('files.noSection')), { kind: 'unavailable', reason: 'the remote is not in the rclone config' });
  t.same(parseRemoteFiles(sample('files.notInstalled')), { kind: 'unavailable', reason: 'rclone is not installed' });
  t.match(parseRemoteFiles(sample('files.serverDown')), { kind: 'error', reason: /^caused by: Get "http:\/\/10\.200\.2\.1:40125\/backups\?.*connection refused$/ });
  t.throws(() => parseRemoteFiles({ stdout: '{}', stderr: '', exitCode: 0 }), /unexpected lsjson output/);
});

t.test('locations: rclone paths, commands and checks', async (t) => {
  const loc = { remote: 'r2', bucket: 'acme-backups', prefix: 'db1' };
  t.equal(remotePath(loc), 'r2:acme-backups/db1');
  t.equal(remotePath(loc, 'a.dump'), 'r2:acme-backups/db1/a.dump');
  t.equal(remotePath({ remote: 'r2', bucket: 'acme-backups' }), 'r2:acme-backups');
  t.equal(rcloneCommand({ ...loc, retries: 1, lowLevelRetries: 2, configPath: '/etc/rclone.conf' }, 'lsjson', ['x']).toString(), 'rclone --config /etc/rclone.conf --retries 1 --low-level-retries 2 lsjson x');
  t.equal(
    remoteFiles(loc).command.toString(),
    'command -v rclone >/dev/null 2>&1 || exit 100; [ -f /root/.config/rclone/rclone.conf ] || exit 101; rclone --config /root/.config/rclone/rclone.conf lsjson --files-only --no-mimetype r2:acme-backups/db1',
  );
  t.throws(() => checkLocation({ remote: 'r2', bucket: 'Bad_Bucket' }, 'rclone.copy'), /rclone.copy: bucket must be an S3 bucket name/);
  t.throws(() => checkLocation({ remote: '-x', bucket: 'b-1' }, 'rclone.copy'), /remote must be an rclone remote name/);
  t.throws(() => checkLocation({ remote: 'r2', bucket: 'b-1', prefix: '../up' }, 'w'), /prefix must be folder names/);
  t.throws(() => checkLocation({ remote: 'r2', bucket: 'b-1', retries: 0 }, 'w'), /retries must be a whole number ≥ 1/);
});
