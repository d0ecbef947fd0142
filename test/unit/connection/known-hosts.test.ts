import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  appendKnownHost,
  checkHostKey,
  formatKnownHostsLine,
  keyFingerprint,
  loadKnownHosts,
  parseKnownHosts,
} from '../../../lib/connection/known-hosts.ts';

// Real keys from ssh-keygen, so the wire format and fingerprints are OpenSSH's own.
const keyDir = t.testdir({});
function makeKey(name: string, type: string): { line: string; key: Buffer; fingerprint: string } {
  const path = join(keyDir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', name, '-f', path]);
  const line = readFileSync(`${path}.pub`, 'utf8').trim();
  const [, base64 = ''] = line.split(' ');
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${path}.pub`], { encoding: 'utf8' }).split(' ')[1] ?? '';
  return { line: line.split(' ').slice(0, 2).join(' '), key: Buffer.from(base64, 'base64'), fingerprint };
}
const ed1 = makeKey('ed1', 'ed25519');
const ed2 = makeKey('ed2', 'ed25519');
const ecdsa = makeKey('ec', 'ecdsa');

const keygen = (...args: string[]): string => execFileSync('ssh-keygen', args, { encoding: 'utf8' });

t.test('keyFingerprint matches ssh-keygen -l', async (t) => {
  t.equal(keyFingerprint(ed1.key), ed1.fingerprint);
  t.equal(keyFingerprint(ecdsa.key), ecdsa.fingerprint);
});

t.test('parses fields, markers, comments and skips what OpenSSH skips', async (t) => {
  const text = [
    '# a comment',
    '',
    `  web1,10.0.0.5 ${ed1.line} trailing comment here`,
    `@revoked * ${ed2.line}`,
    `@cert-authority *.example.com ${ecdsa.line} ca`,
    `@bogus web1 ${ed1.line}`, // unknown marker
    `web2 ssh-rsa ${ed1.line.split(' ')[1]}`, // declared type differs from the blob
    'web3 1024 35 1234567', // legacy RSA1
    'web4 ssh-ed25519 not*base64',
    `|1|c2FsdA==|aGFzaA== ${ed1.line}`, // salt and hash too short
    `web5\t${ed1.line}\r`,
  ].join('\n');
  const entries = parseKnownHosts(text);
  t.same(
    entries.map((e) => [e.line, e.marker, e.keyType, e.comment]),
    [
      [3, 'none', 'ssh-ed25519', 'trailing comment here'],
      [4, 'revoked', 'ssh-ed25519', ''],
      [5, 'cert-authority', ecdsa.line.split(' ')[0], 'ca'],
      [11, 'none', 'ssh-ed25519', ''],
    ],
  );
  t.same(entries[0]?.hosts, {
    kind: 'patterns',
    patterns: [
      { pattern: 'web1', negated: false },
      { pattern: '10.0.0.5', negated: false },
    ],
  });
  t.ok(entries[0]?.key.equals(ed1.key));
});

t.test('match, unknown and changed', async (t) => {
  const entries = parseKnownHosts(`web1 ${ed1.line}\nweb1 ${ecdsa.line}\nonlyec ${ecdsa.line}\n`);
  t.same(checkHostKey(entries, 'web1', 22, ed1.key), { kind: 'match' });
  t.same(checkHostKey(entries, 'WEB1', 22, ed1.key), { kind: 'match' }, 'host names are case-insensitive');
  t.same(checkHostKey(entries, 'web2', 22, ed1.key), { kind: 'unknown' });
  t.same(checkHostKey(entries, 'web1', 22, ed2.key), { kind: 'changed', expectedTypes: ['ssh-ed25519', ecdsa.line.split(' ')[0]] });
  t.same(checkHostKey(entries, 'onlyec', 22, ed1.key), { kind: 'unknown' }, 'only another key type is known');
  t.throws(() => checkHostKey(entries, 'web1', 22, Buffer.from('junk')), TypeError);
  t.throws(() => checkHostKey(entries, 'web1', 0, ed1.key), TypeError);
});

t.test('wildcards and negation', async (t) => {
  const entries = parseKnownHosts(`*.lab.example,!db?.lab.example,host-? ${ed1.line}\n`);
  const check = (host: string): string => checkHostKey(entries, host, 22, ed1.key).kind;
  t.equal(check('web.lab.example'), 'match');
  t.equal(check('a.b.lab.example'), 'match', '* crosses dots');
  t.equal(check('lab.example'), 'unknown');
  t.equal(check('db1.lab.example'), 'unknown', 'a negated match rejects the whole line');
  t.equal(check('db12.lab.example'), 'match', '? is exactly one character');
  t.equal(check('host-1'), 'match');
  t.equal(check('host-12'), 'unknown');
  // Negation wins wherever it appears in the list.
  t.equal(checkHostKey(parseKnownHosts(`!web1,* ${ed1.line}`), 'web1', 22, ed1.key).kind, 'unknown');
});

t.test('ports use the [host]:port form, with OpenSSH fallback to the bare name', async (t) => {
  const entries = parseKnownHosts(`[web1]:2222 ${ed1.line}\n[*.lab]:2200 ${ed1.line}\nplain ${ed1.line}\n`);
  t.equal(checkHostKey(entries, 'web1', 2222, ed1.key).kind, 'match');
  t.equal(checkHostKey(entries, 'web1', 22, ed1.key).kind, 'unknown', 'the port entry does not cover port 22');
  t.equal(checkHostKey(entries, 'web1', 2200, ed1.key).kind, 'unknown');
  t.equal(checkHostKey(entries, 'x.lab', 2200, ed1.key).kind, 'match', 'wildcards inside brackets');
  t.equal(checkHostKey(entries, 'web1', 2222, ed2.key).kind, 'changed');
  t.equal(checkHostKey(entries, 'plain', 2222, ed1.key).kind, 'match', 'bare-name fallback for another port');
  t.equal(checkHostKey(entries, 'plain', 2222, ed2.key).kind, 'unknown', 'the fallback only ever accepts a match');
});

t.test('revoked keys are refused even when also listed as plain', async (t) => {
  const entries = parseKnownHosts(`web1 ${ed1.line}\n@revoked * ${ed1.line}\n`);
  t.same(checkHostKey(entries, 'web1', 22, ed1.key), { kind: 'revoked' });
  t.same(checkHostKey(entries, 'other', 2222, ed1.key), { kind: 'revoked' });
  t.same(checkHostKey(entries, 'web1', 22, ed2.key), { kind: 'changed', expectedTypes: ['ssh-ed25519'] });
});

t.test('a @cert-authority key never matches as a plain host key', async (t) => {
  const entries = parseKnownHosts(`@cert-authority web1 ${ed1.line}\n`);
  t.same(checkHostKey(entries, 'web1', 22, ed1.key), { kind: 'unknown' });
});

t.test('hashed entries written by ssh-keygen -H match', async (t) => {
  const dir = t.testdir({
    known_hosts: [`web1.example.com ${ed1.line}`, `[web1.example.com]:2222 ${ecdsa.line}`, `10.1.2.3 ${ed2.line}`, ''].join('\n'),
  });
  const file = join(dir, 'known_hosts');
  keygen('-H', '-f', file);
  const text = readFileSync(file, 'utf8');
  t.notMatch(text, /web1|10\.1\.2\.3/, 'ssh-keygen hashed every name');
  const entries = parseKnownHosts(text);
  t.same(entries.map((e) => e.hosts.kind), ['hashed', 'hashed', 'hashed']);
  t.equal(checkHostKey(entries, 'web1.example.com', 22, ed1.key).kind, 'match');
  t.equal(checkHostKey(entries, 'Web1.Example.com', 22, ed1.key).kind, 'match');
  t.equal(checkHostKey(entries, 'web1.example.com', 2222, ecdsa.key).kind, 'match');
  t.equal(checkHostKey(entries, '10.1.2.3', 22, ed2.key).kind, 'match');
  t.equal(checkHostKey(entries, '10.1.2.3', 22, ed1.key).kind, 'changed');
  t.equal(checkHostKey(entries, 'web2.example.com', 22, ed1.key).kind, 'unknown');
});

t.test('hashed lines found by ssh-keygen -F match the same host here', async (t) => {
  const dir = t.testdir({ known_hosts: `[db.lab]:2200 ${ed2.line}\n` });
  const file = join(dir, 'known_hosts');
  keygen('-H', '-f', file);
  // -F prints the matching line (after a "# Host … found" comment); -H hashes it.
  const found = keygen('-F', '[db.lab]:2200', '-H', '-f', file);
  const line = found.split('\n').find((l) => l.startsWith('|1|')) ?? '';
  t.match(line, /^\|1\|/);
  t.equal(checkHostKey(parseKnownHosts(line), 'db.lab', 2200, ed2.key).kind, 'match');
});

t.test('formatKnownHostsLine', async (t) => {
  t.equal(formatKnownHostsLine('Web1', 22, ed1.key), `web1 ${ed1.line}`);
  t.equal(formatKnownHostsLine('web1', 2222, ed1.key), `[web1]:2222 ${ed1.line}`);
  t.equal(formatKnownHostsLine('fe80::1', 2222, ed1.key), `[fe80::1]:2222 ${ed1.line}`);
  for (const bad of ['', 'a b', 'a,b', '*.lab', '!x', '[x]:1', '|1|x']) {
    t.throws(() => formatKnownHostsLine(bad, 22, ed1.key), TypeError, JSON.stringify(bad));
  }
});

t.test('appendKnownHost creates ~/.ssh and the file with OpenSSH modes, then matches', async (t) => {
  const home = t.testdir({});
  const file = join(home, '.ssh', 'known_hosts');
  await appendKnownHost(file, 'web1', 22, ed1.key);
  await appendKnownHost(file, 'web1', 2222, ecdsa.key);
  t.equal(statSync(join(home, '.ssh')).mode & 0o777, 0o700);
  t.equal(statSync(file).mode & 0o777, 0o600);
  t.equal(readFileSync(file, 'utf8'), `web1 ${ed1.line}\n[web1]:2222 ${ecdsa.line}\n`);
  const entries = await loadKnownHosts([file]);
  t.equal(checkHostKey(entries, 'web1', 22, ed1.key).kind, 'match');
  t.equal(checkHostKey(entries, 'web1', 2222, ecdsa.key).kind, 'match');
  // OpenSSH reads what we wrote.
  t.match(keygen('-F', '[web1]:2222', '-f', file), ecdsa.line);
});

t.test('appendKnownHost completes a last line that lacks its newline', async (t) => {
  const dir = t.testdir({ known_hosts: `old ${ed2.line}` });
  const file = join(dir, 'known_hosts');
  await appendKnownHost(file, 'new', 22, ed1.key);
  t.equal(readFileSync(file, 'utf8'), `old ${ed2.line}\nnew ${ed1.line}\n`);
  t.equal(checkHostKey(await loadKnownHosts([file]), 'old', 22, ed2.key).kind, 'match');
});

t.test('appendKnownHost leaves an existing file mode alone and validates before writing', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'known_hosts');
  writeFileSync(file, '', { mode: 0o644 });
  await appendKnownHost(file, 'h', 22, ed1.key);
  t.equal(statSync(file).mode & 0o777, 0o644);
  await t.rejects(appendKnownHost(join(dir, 'nested', 'kh'), 'bad host', 22, ed1.key), TypeError);
  t.throws(() => statSync(join(dir, 'nested')), 'nothing created for a rejected host');
});

t.test('loadKnownHosts reads existing files in order and ignores missing ones', async (t) => {
  const dir = t.testdir({ a: `web1 ${ed1.line}\n`, b: `web1 ${ecdsa.line}\n` });
  const entries = await loadKnownHosts([join(dir, 'missing'), join(dir, 'a'), join(dir, 'a', 'not-a-dir'), join(dir, 'b')]);
  t.same(
    entries.map((e) => [e.file, e.line, e.keyType]),
    [
      [join(dir, 'a'), 1, 'ssh-ed25519'],
      [join(dir, 'b'), 1, ecdsa.line.split(' ')[0]],
    ],
  );
  await t.rejects(loadKnownHosts([dir]), { code: 'EISDIR' }, 'other errors surface');
});

t.test('knownKeyTypes lists the plain key types for a host, port form first', async (t) => {
  const { knownKeyTypes, parseKnownHosts } = await import('../../../lib/connection/known-hosts.ts');
  const key = (type: string) => {
    const b = Buffer.alloc(4 + type.length + 4);
    b.writeUInt32BE(type.length, 0);
    b.write(type, 4, 'latin1');
    return `${type} ${b.toString('base64')}`;
  };
  const entries = parseKnownHosts(`web1,10.0.0.5 ${key('ssh-ed25519')}\n[web1]:2222 ${key('ecdsa-sha2-nistp256')}\n@revoked web1 ${key('ssh-rsa')}\n`);
  t.same(knownKeyTypes(entries, 'web1', 22), ['ssh-ed25519']);
  t.same(knownKeyTypes(entries, 'web1', 2222), ['ecdsa-sha2-nistp256']);
  t.same(knownKeyTypes(entries, '10.0.0.5', 2222), ['ssh-ed25519'], 'falls back to the bare name');
  t.same(knownKeyTypes(entries, 'other', 22), []);
});
