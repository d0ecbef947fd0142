import { Buffer } from 'node:buffer';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { secret } from '../../../lib/command/command.ts';
import type { Change, Operation } from '../../../lib/ops/operation.ts';
import { TackleError } from '../../../lib/errors.ts';
import { sha256Hex, type PathInfo } from '../../../lib/facts/files.ts';
import type { RemoteFiles } from '../../../lib/facts/rclone.ts';
import { rclone, replaceSection } from '../../../lib/ops/rclone.ts';
import { runOp } from '../../support/run-op.ts';
import { tempDir } from '../../support/temp-dir.ts';

const KEY_ID = 'AKIDEXAMPLE0123';
const KEY = 'wJalr/XUtnFEMI+K7MDENG';
const keys = { accessKeyId: secret(KEY_ID), secretAccessKey: secret(KEY) };
const CONFIG = '/root/.config/rclone/rclone.conf';
const ACCOUNT = '0123456789abcdef0123456789abcdef';
const commands = (change: Change | undefined): string[] => (change?.actions ?? []).map((a) => a.command.toString());
const planOf = (op: Operation, facts: Record<string, unknown>): Change | undefined => op.plan(facts);
const fileInfo = (content: string, mode = '0600'): PathInfo => {
  const bytes = Buffer.from(content);
  return { kind: 'file', mode, owner: 'root', group: 'root', uid: 0, gid: 0, size: bytes.length, sha256: sha256Hex(bytes), content: bytes.toString('base64') };
};
const R2_SECTION = `[r2]
type = s3
provider = Cloudflare
access_key_id = ${KEY_ID}
secret_access_key = ${KEY}
endpoint = https://${ACCOUNT}.r2.cloudflarestorage.com
region = auto
no_check_bucket = true
`;

t.test('rclone.remote writes an R2 remote mode 600 and never shows the keys', async (t) => {
  const op = rclone.remote({ name: 'r2', provider: 'Cloudflare', accountId: ACCOUNT, ...keys });
  t.equal(op.name, 'rclone.remote r2');
  const create = planOf(op, { config: { kind: 'missing' } });
  t.equal(create?.summary, `add remote r2 (Cloudflare, https://${ACCOUNT}.r2.cloudflarestorage.com) in ${CONFIG}: create ${CONFIG} (secret content, mode 0600)`);
  t.equal(commands(create)[0], 'mkdir -p -m 0700 -- /root/.config/rclone');
  t.match(commands(create)[1], /chmod -- 0600 "\$tackle_tmp"\nmv -fT -- "\$tackle_tmp" \/root\/\.config\/rclone\/rclone\.conf/);
  t.equal(create?.actions[1]?.stdin instanceof Object && (create.actions[1].stdin as { reveal(): string }).reveal(), R2_SECTION, 'the real content goes to the host on stdin');
  t.equal(
    create?.diff,
    `--- /dev/null\n+++ ${CONFIG}\n@@ -0,0 +1,8 @@\n+[r2]\n+type = s3\n+provider = Cloudflare\n+access_key_id = ***\n+secret_access_key = ***\n+endpoint = https://${ACCOUNT}.r2.cloudflarestorage.com\n+region = auto\n+no_check_bucket = true\n`,
  );
  const shown = JSON.stringify(create) + String(create?.summary) + commands(create).join('');
  t.notOk(shown.includes(KEY) || shown.includes(KEY_ID), 'no key in summary, commands, diff or JSON');
  t.equal(planOf(op, { config: fileInfo(R2_SECTION) }), undefined, 'converged: no change');
  t.same(commands(planOf(op, { config: fileInfo(R2_SECTION, '0644') })), ['chmod -- 0600 /root/.config/rclone/rclone.conf'], 'a readable config is closed');
});

t.test('rclone.remote replaces only its own section; other remotes stay', async (t) => {
  const other = '# by hand\n[backup-b2]\ntype = b2\naccount = 123\n\n';
  const op = rclone.remote({ name: 'r2', provider: 'Cloudflare', accountId: ACCOUNT, ...keys });
  const added = planOf(op, { config: fileInfo(other) });
  t.equal((added?.actions[0]?.stdin as { reveal(): string }).reveal(), `${other}${R2_SECTION}`);
  const old = `${other}[r2]\ntype = s3\nprovider = Cloudflare\naccess_key_id = OLDKEY\nsecret_access_key = OLDSECRET\nendpoint = https://old.example\n\n[last]\ntype = local\n`;
  const updated = planOf(op, { config: fileInfo(old) });
  t.equal((updated?.actions[0]?.stdin as { reveal(): string }).reveal(), `${other}${R2_SECTION}\n[last]\ntype = local\n`);
  t.match(updated?.summary, /^update remote r2/);
  t.match(updated?.diff, /-endpoint = https:\/\/old\.example\n\+endpoint = https:\/\/0123/);
  t.notMatch(updated?.diff, /OLDKEY|OLDSECRET|AKID/, 'old and new keys masked in the diff');
  const onlyKeys = planOf(op, { config: fileInfo(R2_SECTION.replace(KEY, 'rotated')) });
  t.equal(onlyKeys?.diff, `${CONFIG}: secret values changed (not shown)\n`);
  t.equal(replaceSection('', 'a', '[a]\nx = 1\n'), '[a]\nx = 1\n');
  t.equal(replaceSection('[a]\nx = 1', 'b', '[b]\n'), '[a]\nx = 1\n\n[b]\n');
});

t.test('rclone.remote: any S3 endpoint; bad input is refused naming the field, never the key', async (t) => {
  const s3rver = rclone.remote({ name: 's3', provider: 'Other', endpoint: 'http://10.200.0.1:4568', ...keys, configPath: '/etc/rclone/rclone.conf' });
  t.match((planOf(s3rver, { config: { kind: 'missing' } })?.actions[1]?.stdin as { reveal(): string }).reveal(), /^\[s3\]\ntype = s3\nprovider = Other\n.*\nendpoint = http:\/\/10\.200\.0\.1:4568\nregion = auto\nno_check_bucket = true\n$/s);
  t.throws(() => rclone.remote({ name: 's3', provider: 'Other', ...keys }), /rclone.remote: provider Other needs an endpoint/);
  t.throws(() => rclone.remote({ name: 'r2', provider: 'Cloudflare', ...keys }), /provider Cloudflare needs an endpoint or an accountId/);
  t.throws(() => rclone.remote({ name: 'r2', provider: 'Cloudflare', accountId: 'nope', ...keys }), /accountId is a Cloudflare account id/);
  t.throws(() => rclone.remote({ name: 'r 2', provider: 'AWS', ...keys }), /name must be an rclone remote name/);
  t.throws(() => rclone.remote({ name: 'r2', provider: 'Backblaze' as never, ...keys }), /provider must be one of/);
  t.throws(() => rclone.remote({ name: 'r2', provider: 'AWS', accessKeyId: KEY_ID as never, secretAccessKey: keys.secretAccessKey }), /accessKeyId must be a secret/);
  let message = '';
  try {
    rclone.remote({ name: 'r2', provider: 'AWS', accessKeyId: keys.accessKeyId, secretAccessKey: secret(`${KEY}\n`) });
  } catch (err) {
    message = (err as Error).message;
  }
  t.match(message, /secretAccessKey is empty or has white space/);
  t.notOk(message.includes(KEY));
});

const loc = { remote: 'r2', bucket: 'acme-backups', prefix: 'db1', retries: 2 };

t.test('rclone.copy and rclone.check: exactly the new files, copy never sync, check size and checksum', async (t) => {
  const files = ['app-20261122T020000Z.dump', 'app-20261122T020000Z.dump.sha256'];
  const copy = rclone.copy({ from: '/var/backups/postgresql', files, to: loc });
  t.equal(copy.name, 'rclone.copy /var/backups/postgresql → r2:acme-backups/db1');
  const copied = planOf(copy, {});
  t.equal(copied?.summary, 'upload app-20261122T020000Z.dump, app-20261122T020000Z.dump.sha256 to r2:acme-backups/db1');
  t.same(commands(copied), [
    [
      'set -u',
      'tackle_list=$(mktemp) || exit 1',
      `trap 'rm -f -- "$tackle_list"' EXIT`,
      "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM",
      'umask 077',
      `printf '%s\\n' app-20261122T020000Z.dump app-20261122T020000Z.dump.sha256 > "$tackle_list" || exit 1`,
      `for tackle_f in /var/backups/postgresql/app-20261122T020000Z.dump /var/backups/postgresql/app-20261122T020000Z.dump.sha256; do [ -f "$tackle_f" ] || { printf 'tackle: %s is missing; nothing uploaded\\n' "$tackle_f" >&2; exit 1; }; done`,
      'rclone --config /root/.config/rclone/rclone.conf --retries 2 copy --files-from-raw "$tackle_list" --no-traverse /var/backups/postgresql r2:acme-backups/db1',
    ].join('\n'),
  ]);
  t.notMatch(commands(copied)[0], /\bsync\b/);
  const check = rclone.check({ from: '/var/backups/postgresql', files, to: loc });
  t.equal(check.name, 'rclone.check /var/backups/postgresql ↔ r2:acme-backups/db1');
  t.match(commands(planOf(check, {}))[0], '\ntackle_out=$(rclone --config /root/.config/rclone/rclone.conf --retries 2 check --one-way --files-from-raw "$tackle_list" /var/backups/postgresql r2:acme-backups/db1 2>&1)\n');
  t.match(commands(planOf(rclone.check({ from: '/b', files, to: loc, method: 'download' }), {}))[0], 'check --one-way --download --files-from-raw');
  t.throws(() => rclone.copy({ from: '/b', files: ['../x'], to: loc }), /"..\/x" is not a file name/);
  t.throws(() => rclone.copy({ from: '/b', files: [], to: loc }), /files must be a non-empty list/);
});

t.test('applied: rclone.check fails when rclone could compare sizes only', async (t) => {
  const bin = tempDir('rclonebin');
  writeFileSync(join(bin, 'rclone'), '#!/bin/sh\necho "NOTICE: S3 bucket b: 1 hashes could not be checked" >&2\necho "NOTICE: 0 differences found" >&2\nexit 0\n');
  chmodSync(join(bin, 'rclone'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path}`;
  t.teardown(() => {
    process.env.PATH = path;
  });
  const step = await runOp(rclone.check({ from: '/tmp', files: ['a'], to: loc }));
  t.equal(step.status, 'failed');
  t.match(step.error?.stderrTail, /1 hashes could not be checked[\s\S]*tackle: no checksum could be compared, only sizes; use method download/);
});

const DAY = 86_400_000;
const NOW = new Date('2026-11-22T02:00:00Z');
const remoteListing = (entries: Array<[string, number]>): RemoteFiles => ({ kind: 'listing', files: entries.map(([name, days]) => ({ name, size: 5, mtimeMs: NOW.getTime() - days * DAY })) });

t.test('rclone.prune: 30 days and at least 3 verified copies; nothing when not set up; fails when the remote cannot be listed', async (t) => {
  const op = rclone.prune({ location: loc, now: NOW });
  t.equal(op.name, 'rclone.prune r2:acme-backups/db1');
  const pairs = (stamp: string, days: number): Array<[string, number]> => [
    [`app-${stamp}.dump`, days],
    [`app-${stamp}.dump.sha256`, days],
  ];
  const change = planOf(op, { listing: remoteListing([...pairs('20261121T020000Z', 1), ...pairs('20261020T020000Z', 33), ...pairs('20261010T020000Z', 43), ...pairs('20261001T020000Z', 52), ['app-20261005T020000Z.dump', 48]]) });
  t.same(commands(change), [
    'rclone --config /root/.config/rclone/rclone.conf --retries 2 deletefile r2:acme-backups/db1/app-20261005T020000Z.dump && rclone --config /root/.config/rclone/rclone.conf --retries 2 deletefile r2:acme-backups/db1/app-20261001T020000Z.dump && rclone --config /root/.config/rclone/rclone.conf --retries 2 deletefile r2:acme-backups/db1/app-20261001T020000Z.dump.sha256',
  ]);
  t.match(change?.summary, /^remove 2 backup\(s\): app-20261005T020000Z.dump \(unverified, older than 30 days\), app-20261001T020000Z.dump \(older than 30 days\); keep 3 \(30 days, at least the newest 3 verified\)$/);
  t.equal(planOf(op, { listing: remoteListing(pairs('20261001T020000Z', 52)) }), undefined, 'the only copy stays');
  t.equal(planOf(op, { listing: { kind: 'unavailable', reason: 'rclone is not installed' } }), undefined);
  t.throws(() => planOf(op, { listing: { kind: 'error', reason: 'connection refused' } }), new TackleError({ phase: 'operation', reason: 'cannot list r2:acme-backups/db1: connection refused' }));
});

t.test('rclone.download fetches only what is missing', async (t) => {
  const op = rclone.download({ from: loc, files: ['a.dump', 'a.dump.sha256'], to: '/var/backups/postgresql' });
  t.equal(op.name, 'rclone.download r2:acme-backups/db1 → /var/backups/postgresql');
  t.equal(planOf(op, { f0: { kind: 'exists' }, f1: { kind: 'exists' } }), undefined);
  const change = planOf(op, { f0: { kind: 'missing' }, f1: { kind: 'exists' } });
  t.equal(change?.summary, 'download a.dump from r2:acme-backups/db1 to /var/backups/postgresql');
  t.match(commands(change)[0], "umask 077\nprintf '%s\\n' a.dump > \"$tackle_list\" || exit 1\nrclone --config /root/.config/rclone/rclone.conf --retries 2 copy --files-from-raw \"$tackle_list\" --no-traverse r2:acme-backups/db1 /var/backups/postgresql");
});
