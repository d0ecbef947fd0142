import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Secret, secret } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import type { StepResult } from '../../../lib/engine/host-run.ts';
import type { Change, Operation } from '../../../lib/ops/operation.ts';
import { pathInfo, sha256Hex, type PathInfo } from '../../../lib/facts/files.ts';
import { files } from '../../../lib/ops/files.ts';
import { runOp } from '../../support/run-op.ts';
import { refusal } from '../../support/plan.ts';
import { handlerRef } from '../../support/handler.ts';
import { TackleError } from '../../../lib/errors.ts';
import { tempDir } from '../../support/temp-dir.ts';

// ------------------------------------------------------------------ planning, from given facts

const missing: PathInfo = { kind: 'missing' };
function fileInfo(content: string | Buffer, meta: Partial<Extract<PathInfo, { kind: 'file' }>> = {}): PathInfo {
  const bytes = Buffer.from(content);
  return { kind: 'file', mode: '0644', owner: 'root', group: 'root', uid: 0, gid: 0, size: bytes.length, sha256: sha256Hex(bytes), content: bytes.toString('base64'), ...meta };
}
const dirInfo: PathInfo = { kind: 'directory', mode: '0755', owner: 'root', group: 'root', uid: 0, gid: 0 };

const plan = (op: Operation, info: PathInfo): Change | undefined => op.plan({ info });
const commands = (change: Change | undefined): string => (change?.actions ?? []).map((a) => a.command.toString()).join('\n---\n');
/** The new content an atomic write sends on stdin. */
const written = (change: Change | undefined): string => String(change?.actions[0]?.stdin ?? '');

t.test('files.file plans create, nothing, metadata or a rewrite', async (t) => {
  const op = files.file({ path: '/etc/app.conf', content: 'a=1\n' });
  t.equal(op.name, 'files.file /etc/app.conf');

  const create = plan(op, missing);
  t.equal(create?.summary, 'create /etc/app.conf (4 bytes, mode 0644)');
  t.equal(create?.actions.length, 1);
  t.equal(written(create), 'a=1\n');
  t.equal(create?.diff, '--- /dev/null\n+++ /etc/app.conf\n@@ -0,0 +1,1 @@\n+a=1\n');
  t.match(commands(create), /tackle_tmp=\$\(mktemp --suffix=\.conf \/etc\/\.tackle-[0-9a-f]{8}-XXXXXX\)/);
  t.match(commands(create), /chmod -- 0644 "\$tackle_tmp"\nmv -fT -- "\$tackle_tmp" \/etc\/app\.conf\n/);
  t.notMatch(commands(create), /chown/, 'a new file is not chowned unless asked');

  t.equal(plan(op, fileInfo('a=1\n')), undefined, 'converged');

  const update = plan(op, fileInfo('a=0\nb=2', { mode: '0600', uid: 1000, gid: 1000, owner: 'app', group: 'app' }));
  t.equal(update?.summary, 'update /etc/app.conf (4 bytes)');
  t.equal(update?.diff, '--- /etc/app.conf\n+++ /etc/app.conf\n@@ -1,2 +1,1 @@\n-a=0\n-b=2\n\\ No newline at end of file\n+a=1\n');
  t.match(commands(update), /chown -- 1000:1000 "\$tackle_tmp"\nchmod -- 0600 "\$tackle_tmp"/, 'keeps the old mode and owner');
});

t.test('files.file renames only after the host checked it received exactly the planned bytes', async (t) => {
  const content = 'a=1\n';
  const text = commands(plan(files.file({ path: '/etc/app.conf', content }), missing));
  const hash = createHash('sha256').update('/etc/app.conf').digest('hex').slice(0, 8);
  // In this order: leftovers of a killed writer of this path go, then the content arrives and is
  // checked (size, then sha256), and only then is the temporary file given its mode and renamed.
  const steps = [
    `rm -f -- /etc/.tackle-${hash}-??????.conf`,
    `tackle_tmp=$(mktemp --suffix=.conf /etc/.tackle-${hash}-XXXXXX)`,
    'cat > "$tackle_tmp" || exit 1; tackle_got=$(wc -c < "$tackle_tmp"); [ "$tackle_got" -eq 4 ]',
    `[ "$(sha256sum < "$tackle_tmp")" = '${sha256Hex(content)}  -' ]`,
    'chmod -- 0644 "$tackle_tmp"',
    'mv -fT -- "$tackle_tmp" /etc/app.conf',
  ];
  let at = -1;
  for (const step of steps) {
    const next = text.indexOf(step, at + 1);
    t.ok(next > at, `then: ${step}`);
    at = next;
  }
  t.match(text, /trap 'exit 141' PIPE/, 'a stderr gone with the controller ends the script through its cleanup trap');
  t.not(commands(plan(files.file({ path: '/etc/other.conf', content }), missing)).match(/\.tackle-(\w{8})-/)?.[1], hash, 'another path, other temporary names');

  const hidden = commands(plan(files.file({ path: '/etc/token', content: secret('hunter2') }), missing));
  t.notMatch(hidden, sha256Hex('hunter2'), 'the digest of a secret is not shown');
  t.match(hidden, /-eq 7 .*= \*\*\* \]/);
});

t.test('files.file fixes metadata without rewriting', async (t) => {
  const op = files.file({ path: '/etc/app.conf', content: 'x\n', mode: '600', owner: 'app' });
  const change = plan(op, fileInfo('x\n'));
  t.equal(change?.summary, 'set owner root → app, mode 0644 → 0600 on /etc/app.conf');
  t.equal(commands(change), 'chown -- app /etc/app.conf && chmod -- 0600 /etc/app.conf');
  t.notOk(change?.diff);

  // chown clears setuid bits, so the kept mode is applied again after it.
  const onlyOwner = plan(files.file({ path: '/usr/local/bin/x', owner: 'app' }), fileInfo('x', { mode: '4755' }));
  t.equal(commands(onlyOwner), 'chown -- app /usr/local/bin/x && chmod -- 4755 /usr/local/bin/x');

  t.equal(plan(files.file({ path: '/x', owner: '0', group: 'root', mode: 0o644 }), fileInfo('')), undefined, 'numeric owner compares to uid');
  t.equal(commands(plan(files.file({ path: '/x', group: 'adm' }), fileInfo(''))), 'chown -- :adm /x && chmod -- 0644 /x');
});

t.test('files.file metadata on a missing file plans a check that fails the step', async (t) => {
  const change = plan(files.file({ path: '/etc/x', mode: '0600' }), missing);
  t.match(change?.summary, /set mode 0600 on \/etc\/x \(missing: this fails\)/);
  t.match(commands(change), /^\{ \[ -f \/etc\/x \] \|\| .*exit 1; \}; \} && chmod -- 0600 \/etc\/x$/);
});

t.test('files.file refuses directories, other files and (without force) symlinks', async (t) => {
  const op = files.file({ path: '/etc/app', content: 'x' });
  t.equal(refusal(() => plan(op, dirInfo)), 'files.file: /etc/app is a directory, not a regular file (use files.directory)');
  t.match(refusal(() => plan(op, { kind: 'other', type: 'fifo' })), /is a fifo, not a regular file/);
  t.match(refusal(() => plan(op, { kind: 'link', target: '/srv/app' })), /^files\.file: \/etc\/app is a symlink to \/srv\/app; links are not written through/);
  const forced = plan(files.file({ path: '/etc/app', content: 'x', force: true }), { kind: 'link', target: '/srv/app' });
  t.equal(forced?.summary, 'replace symlink /etc/app → /srv/app with a file (1 bytes, mode 0644)');
  t.match(commands(forced), /mv -fT -- "\$tackle_tmp" \/etc\/app\n/);
});

t.test('files.file state absent', async (t) => {
  const op = files.file({ path: '/etc/old', state: 'absent' });
  t.equal(plan(op, missing), undefined);
  t.equal(commands(plan(op, fileInfo('x'))), 'rm -f -- /etc/old');
  t.equal(plan(op, { kind: 'link', target: 'y' })?.summary, 'remove /etc/old (symlink → y)');
  t.match(refusal(() => plan(op, dirInfo)), /is a directory/);
});

t.test('modes: octal strings and numbers normalise; ambiguous ones are refused', async (t) => {
  const cases: [string | number, string][] = [
    ['0644', '0644'],
    ['644', '0644'],
    ['0o750', '0750'],
    [0o600, '0600'],
    ['4755', '4755'],
    ['02775', '2775'],
    [0, '0000'],
    ['u=rw,g=r,o=r', '0644'],
    ['a=rx,u=rwx', '0755'],
    ['ug=rw,o=', '0660'],
  ];
  for (const [mode, want] of cases) {
    t.equal(commands(plan(files.file({ path: '/x', mode }), fileInfo('', { mode: '0001' }))), `chmod -- ${want} /x`, String(mode));
  }
  for (const bad of [644, 755, 0o10000, 'u+x', 'u=rw', '999', 'rw-r--r--', '44']) {
    t.throws(() => files.file({ path: '/x', mode: bad }), TackleError, String(bad));
  }
  t.throws(() => files.file({ path: '/x', mode: 644 }), /write 0o644 or '644'/);
});

t.test('bad input is refused at once', async (t) => {
  t.throws(() => files.file({ path: 'etc/x', content: '' }), /absolute path/);
  t.throws(() => files.file({ path: '/x', content: '', validate: 'visudo -c' }), /must be a command containing %s/);
  t.throws(() => files.file({ path: '/x' }), /give content/);
  t.throws(() => files.file({ path: '/x', content: 'y', state: 'absent' }), /make no sense/);
  t.throws(() => files.file({ path: '/x', owner: 'a:b' }), /owner must be/);
  t.throws(() => files.line({ path: '/x', line: 'a\nb' }), /one line/);
  t.throws(() => files.line({ path: '/x', line: 'a', match: '(' }), /not a valid regular expression/);
  t.throws(() => files.line({ path: '/x', state: 'absent' }), /needs line or match/);
  t.throws(() => files.directory({ path: '/', state: 'absent' }), /refusing to remove \//);
  t.throws(() => files.link({ path: '/x', target: '' }), /target/);
});

t.test('validate: %s becomes the temporary file, quoted for where it stands', async (t) => {
  const cmd = (validate: string) => commands(plan(files.file({ path: '/etc/sudoers.d/app', content: 'x\n', validate }), missing));
  t.match(cmd('visudo -cf %s'), /\n\( visudo -cf "\$\{tackle_tmp\}"\n\) <\/dev\/null 1>&2 \|\| \{ tackle_rc=\$\?; printf 'tackle: validation failed \(exit %s\): %s\\n' "\$tackle_rc" 'visudo -cf %s' >&2; exit 1; \}\n/);
  t.match(cmd(`sh -c 'test -s %s'`), /\( sh -c 'test -s '"\$\{tackle_tmp\}"''\n/);
  t.match(cmd('grep -q "^x %s"'), /\( grep -q "\^x \$\{tackle_tmp\}"\n/);
  t.match(cmd(`echo \\"%s`), /\( echo \\""\$\{tackle_tmp\}"\n/, 'an escaped quote does not open a string');
  t.match(cmd('visudo -cf %s'), /\) <\/dev\/null 1>&2 \|\|[^\n]*\nmv -fT/, 'validates right before the move');
});

t.test('backup only when there is a previous version', async (t) => {
  const op = files.file({ path: '/etc/app.conf', content: 'new\n', backup: true });
  t.notMatch(commands(plan(op, missing)), /cp -p/);
  const change = plan(op, fileInfo('old\n'));
  t.match(change?.summary, /backup kept/);
  t.match(commands(change), /tackle_bak=\/etc\/app\.conf\.\$\(date \+%Y%m%d%H%M%S\)'~'.*cp -p -- \/etc\/app\.conf "\$tackle_bak"; fi\nmv -fT/);
});

t.test('secret content: never in summary, commands or diff; mode 0600 by default', async (t) => {
  const value = 'hunter2-very-secret';
  const op = files.file({ path: '/etc/app/token', content: secret(value), validate: 'cat %s' });
  for (const info of [missing, fileInfo('old-token\n')]) {
    const change = plan(op, info);
    const text = JSON.stringify({ change, commands: commands(change) });
    t.notMatch(text, value);
    t.ok(change?.actions[0]?.stdin instanceof Secret, 'content leaves as a Secret');
    t.match(change?.diff, /^\/etc\/app\/token: secret content (created|changed) \(not shown\)\n$/);
    t.match(commands(change), />\/dev\/null 2>&1 \|\| .*'its output is hidden because the content is secret'/, 'validator output hidden');
  }
  t.match(commands(plan(op, missing)), /chmod -- 0600/);
  t.equal(plan(op, fileInfo(value)), undefined, 'compared by hash');
});

t.test('diffs of binary and large content are described, not shown', async (t) => {
  const bin = plan(files.file({ path: '/x.bin', content: Buffer.from([0, 1, 2]) }), fileInfo('text\n'));
  t.equal(bin?.diff, '/x.bin: new content is binary or over 256 KiB (3 bytes); no diff shown\n');
  const big = { ...fileInfo(''), size: 400_000, sha256: 'f'.repeat(64) } as PathInfo;
  if (big.kind === 'file') delete big.content;
  t.equal(plan(files.file({ path: '/x', content: 'small\n' }), big)?.diff, '/x: current content is binary or over 256 KiB (400000 bytes); no diff shown\n');
});

t.test('files.directory', async (t) => {
  const op = files.directory({ path: '/srv/app/releases/', mode: 0o750, owner: 'app', group: 'app' });
  t.equal(op.name, 'files.directory /srv/app/releases');
  const create = plan(op, missing);
  t.equal(create?.summary, 'create directory /srv/app/releases (mode 0750)');
  t.equal(commands(create), 'mkdir -p -- /srv/app/releases && chown -- app:app /srv/app/releases && chmod -- 0750 /srv/app/releases');
  t.equal(plan(op, { ...dirInfo, mode: '0750', owner: 'app', group: 'app', uid: 999, gid: 999 }), undefined);
  t.equal(commands(plan(op, { ...dirInfo, owner: 'app', group: 'app' })), 'chmod -- 0750 /srv/app/releases');
  t.match(refusal(() => plan(op, fileInfo('x'))), 'files.directory: /srv/app/releases is a file, not a directory, and is not replaced');
  t.match(refusal(() => plan(op, { kind: 'link', target: '/data' })), /is a symlink to \/data, not a directory/);
  t.equal(plan(files.directory({ path: '/srv/x' }), dirInfo), undefined);

  const gone = files.directory({ path: '/srv/old', state: 'absent' });
  t.equal(plan(gone, missing), undefined);
  t.equal(commands(plan(gone, dirInfo)), 'rmdir -- /srv/old');
  t.equal(commands(plan(files.directory({ path: '/srv/old', state: 'absent', recursive: true }), dirInfo)), 'rm -rf -- /srv/old');
  t.match(refusal(() => plan(gone, fileInfo(''))), /is a file, not a directory/);
});

t.test('files.link', async (t) => {
  const op = files.link({ path: '/etc/nginx/sites-enabled/app', target: '../sites-available/app' });
  t.equal(op.name, 'files.link /etc/nginx/sites-enabled/app');
  const create = plan(op, missing);
  t.equal(create?.summary, 'create symlink /etc/nginx/sites-enabled/app → ../sites-available/app');
  t.match(commands(create), /\nln -sfn -- \.\.\/sites-available\/app "\$tackle_tmp"\nmv -fT -- "\$tackle_tmp" \/etc\/nginx\/sites-enabled\/app\n/);
  t.equal(plan(op, { kind: 'link', target: '../sites-available/app' }), undefined);
  t.equal(plan(op, { kind: 'link', target: '/old' })?.summary, 'retarget symlink /etc/nginx/sites-enabled/app: /old → ../sites-available/app');
  t.match(refusal(() => plan(op, fileInfo('x'))), /is a file, not a symlink; pass force: true/);
  const forced = files.link({ path: '/etc/x', target: '/y', force: true });
  t.equal(plan(forced, fileInfo('x'))?.summary, 'replace file with symlink /etc/x → /y');
  t.match(commands(plan(forced, dirInfo)), /\nrmdir -- \/etc\/x\nmv -fT/, 'an (empty) directory is removed right before the move');

  const gone = files.link({ path: '/etc/x', state: 'absent' });
  t.equal(plan(gone, missing), undefined);
  t.equal(commands(plan(gone, { kind: 'link', target: '/y' })), 'rm -f -- /etc/x');
  t.match(refusal(() => plan(gone, fileInfo(''))), /^files\.link: \/etc\/x is a file, not a symlink; only links are removed/);
});

t.test('files.line edits planned on the controller', async (t) => {
  const cases: { name: string; text: string; opts: Partial<Parameters<typeof files.line>[0]>; want: string | undefined }[] = [
    { name: 'append', text: 'a\n', opts: { line: 'b' }, want: 'a\nb\n' },
    { name: 'append after a last line without newline', text: 'a', opts: { line: 'b' }, want: 'a\nb\n' },
    { name: 'append to an empty file', text: '', opts: { line: 'b' }, want: 'b\n' },
    { name: 'present already', text: 'a\nb\nc', opts: { line: 'b' }, want: undefined },
    { name: 'replace the last match', text: 'x=1\ny\nx=2\nz\n', opts: { line: 'x=3', match: /^x=/ }, want: 'x=1\ny\nx=3\nz\n' },
    { name: 'match as a string', text: '#Port 22\n', opts: { line: 'Port 2222', match: '^#?Port\\s' }, want: 'Port 2222\n' },
    { name: 'matching line already right', text: 'x=1\nx=3\n', opts: { line: 'x=3', match: /^x=/g }, want: undefined },
    { name: 'no match but the exact line exists', text: 'PermitRootLogin no\n', opts: { line: 'PermitRootLogin no', match: /^#PermitRootLogin/ }, want: undefined },
    { name: 'no match: append', text: 'a\n', opts: { line: 'x=1', match: /^x=/ }, want: 'a\nx=1\n' },
    { name: 'CRLF kept', text: 'a\r\nx=1\r\n', opts: { line: 'x=2', match: /^x=/ }, want: 'a\r\nx=2\r\n' },
    { name: 'CRLF append', text: 'a\r\n', opts: { line: 'b' }, want: 'a\r\nb\r\n' },
    { name: 'absent: every match and the exact line', text: 'x=1\nkeep\nx=2\nold\n', opts: { state: 'absent', line: 'old', match: /^x=/ }, want: 'keep\n' },
    { name: 'absent: nothing to remove', text: 'keep\n', opts: { state: 'absent', line: 'old' }, want: undefined },
    { name: 'absent: all lines go', text: 'old', opts: { state: 'absent', line: 'old' }, want: '' },
  ];
  for (const c of cases) {
    const op = files.line({ path: '/etc/x', ...c.opts } as Parameters<typeof files.line>[0]);
    const change = plan(op, fileInfo(c.text, { mode: '0600', owner: 'app', uid: 1000 }));
    if (c.want === undefined) {
      t.equal(change, undefined, c.name);
      continue;
    }
    t.equal(written(change), c.want, c.name);
    t.match(commands(change), /chown -- 1000:0 "\$tackle_tmp"\nchmod -- 0600 "\$tackle_tmp"/, `${c.name}: keeps mode and owner`);
  }
  const diff = plan(files.line({ path: '/etc/x', line: 'x=2', match: /^x=/ }), fileInfo('a\nx=1\nb\n'))?.diff;
  t.equal(diff, '--- /etc/x\n+++ /etc/x\n@@ -1,3 +1,3 @@\n a\n-x=1\n+x=2\n b\n');
});

t.test('files.line on missing, linked, large or binary files', async (t) => {
  const op = files.line({ path: '/etc/x', line: 'a' });
  const absent = plan(op, missing);
  t.match(absent?.summary, /missing: this fails; create: true would create it/);
  t.match(commands(absent), /\[ -f \/etc\/x \] \|\|.*exit 1/);
  const created = plan(files.line({ path: '/etc/x', line: 'a', create: true }), missing);
  t.equal(written(created), 'a\n');
  t.equal(created?.summary, 'create /etc/x (2 bytes, mode 0644)');
  t.equal(plan(files.line({ path: '/etc/x', line: 'a', state: 'absent' }), missing), undefined);
  t.match(refusal(() => plan(op, { kind: 'link', target: '/etc/y' })), /^files\.line: \/etc\/x is a symlink to \/etc\/y; only regular files are edited/);
  t.match(refusal(() => plan(op, fileInfo(Buffer.from([0xff, 0xfe, 0])))), /is not UTF-8 text/);
  const big = { ...fileInfo(''), size: 300_000 } as PathInfo;
  if (big.kind === 'file') delete big.content;
  t.match(refusal(() => plan(op, big)), /\(300000 bytes\); it cannot be edited/);
  t.match(refusal(() => plan(op, dirInfo)), /is a directory, not a regular file/);
});

t.test('step names escape control characters', async (t) => {
  t.equal(files.file({ path: '/tmp/a\nb', content: '' }).name, 'files.file /tmp/a\\nb');
  t.equal(files.file({ path: '/tmp/a', content: '', name: 'motd' }).name, 'motd');
  t.same(files.file({ path: '/tmp/a', content: '', notify: handlerRef('reload') }).notify, ['reload']);
});

// ------------------------------------------------------------------ real runs on this machine

const root = tempDir('files');
let count = 0;
/** A fresh directory whose name has spaces, quotes, `$(id)` and a newline. */
function hostileDir(): string {
  const dir = join(root, `${++count} it's "a" $(id) \`id\`\nx`);
  mkdirSync(dir);
  return dir;
}
const why = (step: StepResult): string => step.error?.message ?? '';
const leftovers = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('.tackle-'));
const modeOf = (p: string) => (statSync(p).mode & 0o7777).toString(8).padStart(4, '0');

t.test('real: create, converge, change with a diff', async (t) => {
  const dir = hostileDir();
  const path = join(dir, "app $(id).conf");
  const op = (content: string) => files.file({ path, content });
  const first = await runOp(op('a=1\nb=2\n'));
  t.equal(first.status, 'changed', why(first));
  t.equal(readFileSync(path, 'utf8'), 'a=1\nb=2\n');
  t.equal(modeOf(path), '0644');
  t.equal((await runOp(op('a=1\nb=2\n'))).status, 'ok', 'second run changes nothing');
  const changed = await runOp(op('a=1\nb=3\n'));
  t.equal(changed.status, 'changed');
  t.match(changed.diff, /\n-b=2\n\+b=3\n$/);
  t.equal(readFileSync(path, 'utf8'), 'a=1\nb=3\n');
  t.same(leftovers(dir), []);
});

t.test('real: mode and owner', async (t) => {
  const dir = hostileDir();
  const path = join(dir, 'secret.txt');
  writeFileSync(path, 'x\n', { mode: 0o644 });
  const op = files.file({ path, mode: 'u=rw,g=r,o=', owner: 'daemon', group: 'bin' });
  const step = await runOp(op);
  t.equal(step.status, 'changed', why(step));
  t.equal(step.summary, `set owner root → daemon, group root → bin, mode 0644 → 0640 on ${path.replace('\n', '\\n')}`);
  const st = statSync(path);
  t.same([st.uid, st.gid, modeOf(path)], [1, 2, '0640']);
  t.equal((await runOp(op)).status, 'ok');
  // A content change keeps the owner and mode it was given.
  t.equal((await runOp(files.file({ path, content: 'y\n' }))).status, 'changed');
  t.same([statSync(path).uid, statSync(path).gid, modeOf(path)], [1, 2, '0640']);
});

t.test('real: a failing validator keeps the old file, leaves no temporary file and reports its stderr', async (t) => {
  const dir = hostileDir();
  const path = join(dir, 'sudoers');
  writeFileSync(path, 'old\n', { mode: 0o440 });
  const step = await runOp(files.file({ path, content: 'new\n', validate: `sh -c 'grep -q old "$1" || { echo "bad config in $1" >&2; exit 3; }' - %s` }));
  t.equal(step.status, 'failed');
  t.match(step.error?.stderrTail, /bad config in [^]*\/\.tackle-[\w-]+\ntackle: validation failed \(exit 3\)/);
  t.equal(readFileSync(path, 'utf8'), 'old\n');
  t.equal(modeOf(path), '0440');
  t.same(leftovers(dir), []);

  const ok = await runOp(files.file({ path, content: 'new, old\n', validate: `grep -q old '%s'` }));
  t.equal(ok.status, 'changed', why(ok));
  t.equal(readFileSync(path, 'utf8'), 'new, old\n');
  t.equal(modeOf(path), '0440');
});

t.test('real: the validator sees a temporary file with the extension', async (t) => {
  const dir = hostileDir();
  const step = await runOp(files.file({ path: join(dir, 'app.service'), content: 'x\n', validate: `case "%s" in *.service) ;; *) exit 1;; esac` }));
  t.equal(step.status, 'changed', why(step));
});

t.test('real: backup keeps the previous version and its mode', async (t) => {
  const dir = hostileDir();
  const path = join(dir, 'app.conf');
  writeFileSync(path, 'v1\n', { mode: 0o600 });
  const step = await runOp(files.file({ path, content: 'v2\n', mode: '0644', backup: true }));
  t.equal(step.status, 'changed', why(step));
  const backups = readdirSync(dir).filter((n) => /^app\.conf\.\d{14}~$/.test(n));
  t.equal(backups.length, 1, `backups: ${readdirSync(dir).join(', ')}`);
  const backup = join(dir, backups[0] ?? '');
  t.equal(readFileSync(backup, 'utf8'), 'v1\n');
  t.equal(modeOf(backup), '0600');
  t.equal(readFileSync(path, 'utf8'), 'v2\n');
  t.equal((await runOp(files.file({ path, content: 'v2\n', mode: '0644', backup: true }))).status, 'ok', 'no backup without a change');
});

t.test('real: secret content never shows, even when its validator prints it', async (t) => {
  const dir = hostileDir();
  const path = join(dir, 'token');
  const value = 'hunter2-swordfish';
  const fail = await runOp(files.file({ path, content: secret(value), validate: 'cat %s; cat %s >&2; exit 1' }));
  t.equal(fail.status, 'failed');
  t.notMatch(JSON.stringify(fail), value);
  t.notMatch(fail.error?.message ?? '', value);
  t.match(fail.error?.stderrTail, /output is hidden because the content is secret/);
  t.same(leftovers(dir), []);

  const ok = await runOp(files.file({ path, content: secret(value) }));
  t.equal(ok.status, 'changed');
  t.notMatch(JSON.stringify(ok), value);
  t.equal(ok.diff, `${path.replace('\n', '\\n')}: secret content created (not shown)\n`);
  t.equal(readFileSync(path, 'utf8'), value);
  t.equal(modeOf(path), '0600');
  t.equal((await runOp(files.file({ path, content: secret(value) }))).status, 'ok');
});

t.test('real: a symlink at the path is refused and left alone', async (t) => {
  const dir = hostileDir();
  writeFileSync(join(dir, 'real'), 'real\n');
  symlinkSync('real', join(dir, 'link'));
  const step = await runOp(files.file({ path: join(dir, 'link'), content: 'x\n' }));
  t.equal(step.status, 'failed');
  t.match(step.error?.reason, /is a symlink to real/);
  t.equal(readFileSync(join(dir, 'real'), 'utf8'), 'real\n');
  const forced = await runOp(files.file({ path: join(dir, 'link'), content: 'x\n', force: true }));
  t.equal(forced.status, 'changed', why(forced));
  t.ok(lstatSync(join(dir, 'link')).isFile());
  t.equal(readFileSync(join(dir, 'real'), 'utf8'), 'real\n', 'the old link target is untouched');
});

t.test('real: a directory at the path is refused', async (t) => {
  const dir = hostileDir();
  const step = await runOp(files.file({ path: dir, content: 'x' }));
  t.equal(step.status, 'failed');
  t.match(step.error?.message, /is a directory/);
});

t.test('real: a dry run on a fresh host plans files below directories not made yet', async (t) => {
  const dir = join(hostileDir(), 'not', 'yet');
  for (const op of [
    files.directory({ path: dir }),
    files.file({ path: join(dir, 'f'), content: 'x' }),
    files.file({ path: join(dir, 'f'), mode: '0600' }),
    files.line({ path: join(dir, 'f'), line: 'x' }),
    files.line({ path: join(dir, 'f'), line: 'x', create: true }),
    files.link({ path: join(dir, 'l'), target: 'f' }),
  ]) {
    const step = await runOp(op, { dryRun: true });
    t.equal(step.status, 'changed', `${op.name}: ${step.error?.message}`);
  }
  t.throws(() => statSync(dir), 'nothing was made');
  // Applied for real, a write below a missing directory fails with a clear reason.
  const real = await runOp(files.file({ path: join(dir, 'f'), content: 'x' }));
  t.match(real.error?.stderrTail, /tackle: directory [^]*\/not\/yet does not exist/);
});

t.test('real: directories', async (t) => {
  const dir = join(hostileDir(), 'a b', 'c');
  const op = files.directory({ path: dir, mode: '0750', owner: 'daemon' });
  t.equal((await runOp(op)).status, 'changed');
  t.same([statSync(dir).isDirectory(), modeOf(dir), statSync(dir).uid], [true, '0750', 1]);
  t.equal((await runOp(op)).status, 'ok');
  writeFileSync(join(dir, 'f'), '');
  const notEmpty = await runOp(files.directory({ path: dir, state: 'absent' }));
  t.equal(notEmpty.status, 'failed');
  t.match(notEmpty.error?.stderrTail, /Directory not empty/);
  t.equal((await runOp(files.directory({ path: dir, state: 'absent', recursive: true }))).status, 'changed');
  t.throws(() => statSync(dir));
  t.equal((await runOp(files.directory({ path: dir, state: 'absent' }))).status, 'ok');
});

t.test('real: links create, converge, retarget, replace and remove', async (t) => {
  const dir = hostileDir();
  const path = join(dir, "l $(id) '");
  const target = "../t 'x' $(id)\nline";
  t.equal((await runOp(files.link({ path, target }))).status, 'changed');
  t.equal(readlinkSync(path), target);
  t.equal((await runOp(files.link({ path, target }))).status, 'ok');
  const retarget = await runOp(files.link({ path, target: '/etc/hostname' }));
  t.equal(retarget.status, 'changed');
  t.equal(readlinkSync(path), '/etc/hostname');
  t.same(leftovers(dir), []);

  const filePath = join(dir, 'file');
  writeFileSync(filePath, 'x');
  t.equal((await runOp(files.link({ path: filePath, target: 'y' }))).status, 'failed');
  t.equal((await runOp(files.link({ path: filePath, target: 'y', force: true }))).status, 'changed');
  t.equal(readlinkSync(filePath), 'y');

  t.equal((await runOp(files.link({ path, state: 'absent' }))).status, 'changed');
  t.throws(() => lstatSync(path));
  t.equal((await runOp(files.link({ path, state: 'absent' }))).status, 'ok');
});

t.test('real: lines replace, append, remove; mode and owner kept', async (t) => {
  const dir = hostileDir();
  const path = join(dir, 'sshd_config');
  writeFileSync(path, '#Port 22\nPasswordAuthentication yes\nUsePAM yes', { mode: 0o600 });
  await runOp(files.file({ path, owner: 'daemon' }));

  const port = files.line({ path, match: /^#?Port\s/, line: 'Port 2222' });
  const first = await runOp(port);
  t.equal(first.status, 'changed', why(first));
  t.match(first.diff, /^--- ".*sshd_config"\n\+\+\+ ".*sshd_config"\n@@ -1,3 \+1,3 @@\n-#Port 22\n\+Port 2222\n PasswordAuthentication yes\n UsePAM yes\n\\ No newline at end of file\n$/);
  t.equal((await runOp(port)).status, 'ok');

  t.equal((await runOp(files.line({ path, line: 'X11Forwarding no' }))).status, 'changed');
  t.equal(readFileSync(path, 'utf8'), 'Port 2222\nPasswordAuthentication yes\nUsePAM yes\nX11Forwarding no\n', 'appended on a line of its own');

  t.equal((await runOp(files.line({ path, match: '^Password', state: 'absent' }))).status, 'changed');
  t.equal(readFileSync(path, 'utf8'), 'Port 2222\nUsePAM yes\nX11Forwarding no\n');
  t.same([modeOf(path), statSync(path).uid], ['0600', 1]);

  const created = join(dir, 'new $(id).list');
  t.equal((await runOp(files.line({ path: created, line: 'deb http://deb.debian.org/debian bookworm main' }))).status, 'failed');
  t.equal((await runOp(files.line({ path: created, line: 'deb http://deb.debian.org/debian bookworm main', create: true }))).status, 'changed');
  t.equal(readFileSync(created, 'utf8'), 'deb http://deb.debian.org/debian bookworm main\n');
  t.same(leftovers(dir), []);
});

t.test('real: a signal during the write removes the temporary file', async (t) => {
  const dir = hostileDir();
  const path = join(dir, 'app.conf');
  writeFileSync(path, 'old\n');
  const change = plan(files.file({ path, content: 'new\n', validate: 'sleep 1 && test -f %s' }), fileInfo('old\n'));
  const action = change?.actions[0];
  if (!action) throw new Error('no action');
  const abort = new AbortController();
  setTimeout(() => abort.abort(), 300);
  const result = await new LocalConnection('local').exec(action.command, { stdin: action.stdin ?? '', signal: abort.signal });
  t.not(result.exitCode, 0);
  t.equal(readFileSync(path, 'utf8'), 'old\n');
  t.same(leftovers(dir), []);
});

t.test('real: content cut short or altered on the way is never installed; its temporary file is removed', async (t) => {
  const dir = hostileDir();
  const path = join(dir, 'big.bin');
  writeFileSync(path, 'old\n');
  const content = Buffer.alloc(200_000, 'new\0');
  const command = plan(files.file({ path, content }), fileInfo('old\n'))?.actions[0]?.command;
  if (!command) throw new Error('no action');
  const conn = new LocalConnection('local');
  // What the host sees when the channel closes mid-transfer: end of input after part of the bytes.
  const cut = await conn.exec(command, { stdin: content.subarray(0, 65_536) });
  t.equal(cut.exitCode, 1);
  t.match(cut.stderr, /only 65536 of 200000 bytes arrived; nothing is installed/);
  t.equal(readFileSync(path, 'utf8'), 'old\n', 'the old file stays');
  t.same(leftovers(dir), [], 'the incomplete temporary file is removed');
  const altered = await conn.exec(command, { stdin: Buffer.alloc(200_000, 'bad\0') });
  t.equal(altered.exitCode, 1);
  t.match(altered.stderr, /not the planned content \(sha256 differs\)/);
  t.equal(readFileSync(path, 'utf8'), 'old\n');
  t.same(leftovers(dir), []);
  const whole = await conn.exec(command, { stdin: content });
  t.equal(whole.exitCode, 0, whole.stderr);
  t.same(readFileSync(path), content);
});

t.test('real: the next write of a path removes what a killed writer of that path left, and nothing else', async (t) => {
  const dir = hostileDir();
  const path = join(dir, 'app.conf');
  const hash = createHash('sha256').update(path).digest('hex').slice(0, 8);
  // A writer killed outright (SIGKILL, power cut) runs no trap: its temporary file stays.
  writeFileSync(join(dir, `.tackle-${hash}-Ab12Cd.conf`), 'partial');
  writeFileSync(join(dir, '.tackle-00000000-Ab12Cd.conf'), 'another path, maybe being written');
  const step = await runOp(files.file({ path, content: 'new\n' }));
  t.equal(step.status, 'changed', why(step));
  t.equal(readFileSync(path, 'utf8'), 'new\n');
  t.same(leftovers(dir), ['.tackle-00000000-Ab12Cd.conf']);
});

t.test('a write says what the path holds after it, so a later step on the same path is planned from that', async (t) => {
  const written = plan(files.file({ path: '/etc/x.conf', content: 'a=1\nc=3\n', owner: 'svc', mode: '0640' }), missing);
  const after = written?.effects?.facts?.[pathInfo('/etc/x.conf').key] as PathInfo;
  t.match(after, { kind: 'file', mode: '0640', owner: 'svc', group: 'root', size: 8, sha256: sha256Hex('a=1\nc=3\n'), content: Buffer.from('a=1\nc=3\n').toString('base64') });
  const edit = plan(files.line({ path: '/etc/x.conf', line: 'c=4', match: '^c=' }), after);
  t.match(edit?.summary, /^update \/etc\/x\.conf/, 'the line step plans from the content the write leaves');
  t.equal(plan(files.file({ path: '/etc/x.conf', content: 'a=1\nc=3\n', owner: 'svc', mode: '0640' }), after), undefined, 'the same write again: nothing');
  const hidden = plan(files.file({ path: '/etc/token', content: secret('s3cr3t') }), missing)?.effects?.facts?.[pathInfo('/etc/token').key] as PathInfo;
  t.equal((hidden as { content?: string }).content, undefined, "a secret's content is not carried");
});
