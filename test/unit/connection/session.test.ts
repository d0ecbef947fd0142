// The session protocol: the pure parts (a request's bytes, one command's answer split from the
// stream by its marker) and, on this machine through LocalConnection, one shell for every command.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import t from 'tap';
import { secret, sh } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { MarkedStream, request } from '../../../lib/connection/session.ts';
import { TackleError } from '../../../lib/errors.ts';
import { tempDir } from '../../support/temp-dir.ts';

const M = '__TACKLE_00ff__';

/** Feeds `text` in chunks of every size from 1 up, as a network may cut it. */
function splitEveryWay(text: Buffer, withCode: boolean): Array<{ bytes: Buffer; code: number | undefined; ended: boolean }> {
  const out = [];
  for (let size = 1; size <= text.length; size++) {
    const s = new MarkedStream(M, withCode);
    for (let i = 0; i < text.length; i += size) s.push(text.subarray(i, i + size));
    out.push({ bytes: s.bytes(), code: s.code, ended: s.ended });
  }
  return out;
}

t.test('stdout: the bytes before the marker line and its exit code, however the chunks split it', async (t) => {
  const answer = Buffer.from(`hello\n\n${M} 42\nstray`);
  for (const r of splitEveryWay(answer, true)) t.same(r, { bytes: Buffer.from('hello\n'), code: 42, ended: true });
  const partial = new MarkedStream(M, true);
  partial.push(Buffer.from(`out\n${M} 4`));
  t.notOk(partial.ended, 'no end before the code line is complete');
  partial.push(Buffer.from('2\n'));
  t.same([partial.ended, partial.code, partial.bytes().toString()], [true, 42, 'out']);
});

t.test('stderr: the bytes before the bare marker line; what arrived so far when it never comes', async (t) => {
  for (const r of splitEveryWay(Buffer.from(`warn\n${M}\n`), false)) t.same(r, { bytes: Buffer.from('warn'), code: undefined, ended: true });
  const cut = new MarkedStream(M, false);
  cut.push(Buffer.from(`sudo: a password is required\n${M.slice(0, 5)}`));
  t.notOk(cut.ended);
  t.equal(cut.bytes().toString(), `sudo: a password is required\n${M.slice(0, 5)}`, 'a session that died leaves its last words readable');
});

t.test('binary output, with something like a marker in it, stays byte-exact', async (t) => {
  const binary = Buffer.concat([Buffer.from([0, 255, 10, 13]), Buffer.from(`\n${M}x\n__TACKLE_`), Buffer.from([10, 0])]);
  for (const r of splitEveryWay(Buffer.concat([binary, Buffer.from(`\n${M} 0\n`)]), true)) t.same(r, { bytes: binary, code: 0, ended: true });
});

t.test('a request: header, wrapped script, payload counted in whole blocks and a rest', async (t) => {
  const none = request('run', sh`true`, undefined, M);
  t.equal(none.head.toString(), `run 10 - - ${M}\n{ :\ntrue\n}`);
  t.equal(none.payload, undefined);
  const big = Buffer.alloc(3 * 65536 + 5);
  t.equal(request('run', sh`cat`, big, M).head.toString().split('\n')[0], `run 9 3 5 ${M}`);
  t.equal(request('run', sh`cat`, Buffer.alloc(65536), M).head.toString().split('\n')[0], `run 9 1 0 ${M}`);
  t.equal(request('shell', sh`exec 9<&-`, undefined, M).head.toString().split('\n')[0], `shell 15 - - ${M}`);
});

t.test('one shell runs every command, one at a time; stdin byte-exact, large stdin streamed, nothing in argv', async (t) => {
  const conn = new LocalConnection('here');
  t.teardown(() => conn.close());
  const token = secret('s3cret-token');
  const results = await Promise.all([
    conn.exec(sh`echo one; echo err >&2; exit 3`),
    conn.exec(sh`: ${token}; cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c 's3cret-toke[n]'`),
    conn.exec(sh`true`, { stdin: 'a payload nobody reads is drained' }),
    conn.exec(sh`echo $PPID; kill -TERM $$`),
    conn.exec(sh`echo $PPID`),
  ]);
  t.match(results[0], { exitCode: 3, stdout: 'one\n', stderr: 'err\n' });
  t.equal(results[1]?.stdout, '0\n', 'the command text is in no process argv (the grep itself has no secret)');
  t.equal(results[2]?.exitCode, 0);
  t.equal(results[3]?.exitCode, 143, 'a command killing itself ends only itself, as 128+signal');
  t.equal(results[4]?.exitCode, 0, 'the session goes on');
  const bytes = Buffer.alloc(5 * 2 ** 20 + 3);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff;
  const sum = await conn.exec(sh`sha256sum | cut -c1-64; echo after`, { stdin: bytes });
  t.equal(sum.stdout, `${createHash('sha256').update(bytes).digest('hex')}\nafter\n`, 'a large binary stdin arrives whole');
  const dir = tempDir('session');
  await conn.put(join(dir, 'f'), bytes);
  t.same(await conn.get(join(dir, 'f')), bytes, 'put and get through the session');
  t.equal((await conn.exec(sh`printf 'a\\0b'`)).stdout, 'a\0b');
  t.same(conn.stats(), { channels: 1, roundTrips: 9, commands: 9 }, 'one process; one round trip per command');
});

t.test('a session that ends mid-command fails that command clearly, and every later one', async (t) => {
  const conn = new LocalConnection('here');
  t.teardown(() => conn.close());
  // The session shell leads the process group of a local connection.
  const died = await conn.exec(sh`echo going >&2; kill -KILL $(ps -o pgid= -p $$); sleep 1`).catch((e: unknown) => e);
  t.type(died, TackleError);
  t.match(died, { phase: 'command', host: 'here', reason: /^the session to here ended while this command ran/, command: /^echo going/, stderrTail: 'going' });
  const later = await conn.exec(sh`echo never`).catch((e: unknown) => e);
  t.match(later, { host: 'here', reason: /^the session to here had ended/, command: 'echo never' }, 'not reused');
  t.equal(conn.stats().channels, 1, 'and not reopened behind the caller');
});

t.test('an abort kills the command and closes the session; what it held in its shell goes with it', async (t) => {
  const dir = tempDir('session');
  const conn = new LocalConnection('here');
  t.teardown(() => conn.close());
  const held = await conn.exec(sh`exec 9<${dir} && flock -n 9 && echo locked`, { inShell: true });
  t.equal(held.stdout, 'locked\n', 'a descriptor opened in the session shell stays open');
  t.equal((await conn.exec(sh`ls /proc/self/fd/9 2>/dev/null || echo closed`)).stdout, 'closed\n', 'commands do not inherit it');
  const other = new LocalConnection('other');
  t.teardown(() => other.close());
  t.equal((await other.exec(sh`flock -n ${dir} true; echo $?`)).stdout, '1\n', 'the lock is held');
  const stop = new AbortController();
  const sleeping = conn.exec(sh`sleep 30`, { signal: stop.signal });
  setTimeout(() => stop.abort(), 100);
  t.match(await sleeping, { exitCode: null, signal: 'SIGHUP' });
  t.match(await conn.exec(sh`true`).catch((e: unknown) => e), { reason: /was closed when the run was stopped/ });
  t.equal((await other.exec(sh`flock -w 10 ${dir} true; echo $?`)).stdout, '0\n', 'the lock is free');
});
