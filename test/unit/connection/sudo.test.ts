// Real processes on this machine: LocalConnection, and a fake `sudo` on PATH that behaves as sudo
// -S does in each sudoers setup (asks for the password, does not ask, refuses it).
import { Buffer } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { secret, sh } from '../../../lib/command/command.ts';
import { framed } from '../../../lib/connection/connection.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { SudoConnection } from '../../../lib/connection/sudo.ts';
import { TackleError } from '../../../lib/errors.ts';
import { tempDir } from '../../support/temp-dir.ts';

const PASSWORD = 'pa55 word';
// Usage as tackle calls it: sudo -S -p PROMPT -H -u USER -- sh -c CMD. FAKE_SUDO picks the setup.
const FAKE_SUDO = `#!/bin/sh
[ "$1" = -S ] && [ "$2" = -p ] || { echo "unexpected sudo call: $*" >&2; exit 99; }
prompt=$(printf '%s' "$3" | sed 's/%p/tester/'); shift 7
echo 'We trust you have received the usual lecture.' >&2
case $FAKE_SUDO in
  nopasswd) ;;
  ask)
    printf '%s' "$prompt" >&2; IFS= read -r pw
    [ "$pw" = '${PASSWORD}' ] || { echo 'Sorry, try again.' >&2; printf '%s' "$prompt" >&2; IFS= read -r pw; echo 'sudo: 2 incorrect password attempts' >&2; exit 1; } ;;
  once)
    printf '%s' "$prompt" >&2; IFS= read -r pw
    [ "$pw" = '${PASSWORD}' ] || { echo 'sudo: 1 incorrect password attempt' >&2; exit 1; } ;;
  denied) echo 'tester is not in the sudoers file.  This incident will be reported.' >&2; exit 1 ;;
esac
exec "$@"
`;

async function fakeSudo(t: { teardown: (fn: () => void) => void }): Promise<void> {
  const bin = tempDir('sudo-bin');
  await writeFile(join(bin, 'sudo'), FAKE_SUDO);
  await chmod(join(bin, 'sudo'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path}`;
  t.teardown(() => {
    process.env.PATH = path;
    delete process.env.FAKE_SUDO;
  });
}

const BYTES = Buffer.from([0x70, 0x61, 0x35, 0x35, 10, 0, 1, 255, 13, 10, 39]);

t.test('framing: the command text is not in the shell arguments, stdin stays byte-exact', async (t) => {
  const conn = new LocalConnection('local');
  const token = secret('s3cret-token');
  const r = await conn.exec(sh`tr '\\0' ' ' < /proc/$$/cmdline; echo; : ${token}; od -An -tx1 | tr -d ' \\n'`, { stdin: BYTES });
  const [argv, bytes] = r.stdout.split('\n');
  t.match(argv, /^sh -c tackle_script=\$\(dd bs=\d+ count=1 iflag=fullblock status=none\) && eval "\$tackle_script"\s*$/, 'the shell was started with the constant line');
  t.equal(bytes, BYTES.toString('hex'), 'stdin reaches the command untouched');
  t.equal(framed(sh`echo ${token}`).line.toString(), framed(sh`echo ${secret('other-value9')}`).line.toString(), 'the line depends only on the length');
  t.equal((await conn.exec(sh`exit 7`)).exitCode, 7, 'exit ends the command with its code');
  t.equal((await conn.exec(sh`false`)).exitCode, 1, 'the last command gives the exit code');
  t.equal((await conn.exec(sh``)).exitCode, 0, 'an empty command is valid');
  t.equal((await conn.exec(sh`echo hi # a comment`)).stdout, 'hi\n', 'a trailing comment cannot swallow the framing');
  const { line, script } = framed(sh`echo never`);
  const truncated = spawnSync('sh', ['-c', line.reveal()], { input: script.subarray(0, script.length - 1), encoding: 'utf8' });
  t.not(truncated.status, 0, 'a truncated script fails');
  t.equal(truncated.stdout, '', 'and runs nothing');
});

for (const setup of ['nopasswd', 'ask'] as const) {
  t.test(`sudo (${setup}): the command's stdin is exactly what the step sends`, async (t) => {
    await fakeSudo(t);
    process.env.FAKE_SUDO = setup;
    const conn = new SudoConnection(new LocalConnection('web1'), { password: secret(PASSWORD) });
    const r = await conn.exec(sh`od -An -tx1 | tr -d ' \\n'; echo done >&2`, { stdin: BYTES });
    t.equal(r.exitCode, 0, r.stderr);
    t.equal(r.stdout, BYTES.toString('hex'));
    t.equal(r.stderr, 'done\n', 'no prompt, marker or lecture in the stderr the caller sees');
    t.equal(r.command.toString(), "od -An -tx1 | tr -d ' \\n'; echo done >&2");
    const put = await conn.exec(sh`cat`, { stdin: '' });
    t.equal(put.stdout, '', 'empty stdin stays empty');
  });
}

t.test('sudo: a refused password fails with a plain reason, after a re-prompt or at once', async (t) => {
  await fakeSudo(t);
  for (const setup of ['ask', 'once']) {
    process.env.FAKE_SUDO = setup;
    const conn = new SudoConnection(new LocalConnection('web1'), { password: secret('wrong') });
    const err = await conn.exec(sh`echo should-not-run`).catch((e: unknown) => e);
    t.type(err, TackleError, setup);
    t.match(err, { phase: 'command', reason: 'sudo refused the password for tester on web1' }, setup);
  }
  process.env.FAKE_SUDO = 'denied';
  const denied = await new SudoConnection(new LocalConnection('web1'), { password: secret(PASSWORD) }).exec(sh`true`).catch((e: unknown) => e);
  t.match(denied, { reason: 'sudo did not run the command as root on web1: tester is not in the sudoers file.  This incident will be reported.', stderrTail: /lecture/ });
});
