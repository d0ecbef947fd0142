// tackle's own SSH layer against real sshd on lab hosts: exit codes, quoting, sudo,
// host-key policy, authentication errors, MaxSessions, jump hosts.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { secret, sh } from '../../lib/command/command.ts';
import { connectSsh, type SshEndpoint } from '../../lib/connection/ssh.ts';
import { SudoConnection } from '../../lib/connection/sudo.ts';
import { OPS_PASSWORD, withLab } from '../../lab/lab.ts';
import { run } from '../../lab/exec.ts';

const lab = await withLab(t, 3);
const tmp = await mkdtemp(join(tmpdir(), 'tackle-conn-'));
const endpoint = (name: string, extra: Partial<SshEndpoint> = {}): SshEndpoint => ({
  name,
  address: lab.host(name).address,
  port: 22,
  user: 'root',
  privateKeyPaths: [lab.privateKeyPath],
  knownHostsPaths: [lab.knownHostsPath],
  ...extra,
});

t.test('exit codes, signals, stdout/stderr and stdin over SSH', async (t) => {
  const conn = await connectSsh(endpoint('lab1'));
  t.teardown(() => conn.close());
  const r = await conn.exec(sh`echo out; echo err >&2; exit 7`);
  t.match(r, { exitCode: 7, stdout: 'out\n', stderr: 'err\n' });
  const killed = await conn.exec(sh`kill -TERM $$`);
  t.equal(killed.exitCode, 143, 'a signal is reported as the session shell sees it: 128 + its number');
  t.equal((await conn.exec(sh`echo still`)).stdout, 'still\n', 'and it ended only that command');
  t.equal((await conn.exec(sh`cat`, { stdin: 'piped\n' })).stdout, 'piped\n');
});

t.test('hostile values arrive literally on the remote host', async (t) => {
  const conn = await connectSsh(endpoint('lab1'));
  t.teardown(() => conn.close());
  const hostile = ["'; touch /tmp/pwned #", '$(touch /tmp/pwned)', '`touch /tmp/pwned`', 'line1\nline2', 'ünïcødé ✓ 日本', '"; rm -rf / #', '\\\\', '$HOME', '-rf', ''];
  for (const value of hostile) {
    t.equal((await conn.exec(sh`printf '%s' ${value}`)).stdout, value, JSON.stringify(value));
    const path = `/tmp/tackle file ${value.replace(/\//g, '_')}`;
    await conn.put(path, value);
    t.equal((await conn.get(path)).toString(), value, `put/get round trip for ${JSON.stringify(value)}`);
  }
  const pwned = await lab.ssh('lab1', 'test -e /tmp/pwned && echo yes || echo no');
  t.equal(pwned.stdout.trim(), 'no', 'nothing was executed');
});

t.test('sudo: -n for NOPASSWD, password over stdin (never on a command line)', async (t) => {
  const admin = new SudoConnection(await connectSsh(endpoint('lab2', { user: 'admin' })));
  t.teardown(() => admin.close());
  t.equal((await admin.exec(sh`id -u`)).stdout.trim(), '0');
  const pw = secret(OPS_PASSWORD);
  const ops = new SudoConnection(await connectSsh(endpoint('lab2', { user: 'ops' })), { password: pw });
  t.teardown(() => ops.close());
  const r = await ops.exec(sh`id -un; cat`, { stdin: 'data after the password\n' });
  t.equal(r.stdout, 'root\ndata after the password\n', 'the command still reads its own stdin');
  t.equal(r.command.toString(), 'id -un; cat');
  const noPw = new SudoConnection(await connectSsh(endpoint('lab2', { user: 'ops' })));
  t.teardown(() => noPw.close());
  const refused = await noPw.exec(sh`true`).catch((e: unknown) => e);
  t.match(refused, { host: 'lab2', reason: /^the session to lab2 ended while this command ran/, stderrTail: /password is required/ }, 'sudo -n fails at once instead of hanging on a prompt');
});

t.test('more commands at once than MaxSessions allows still all succeed', async (t) => {
  const conn = await connectSsh(endpoint('lab3'));
  t.teardown(() => conn.close());
  const results = await Promise.all(Array.from({ length: 25 }, (_, i) => conn.exec(sh`sleep 0.2; echo ${i}`)));
  t.same(results.map((r) => r.stdout.trim()), Array.from({ length: 25 }, (_, i) => String(i)));
  t.same(results.map((r) => r.exitCode), Array(25).fill(0));
});

t.test('host keys: unknown refused, accepted and recorded with the flag, changed always refused', async (t) => {
  const empty = join(tmp, 'known_hosts_empty');
  await writeFile(empty, '');
  await t.rejects(connectSsh(endpoint('lab1', { knownHostsPaths: [empty] })), { phase: 'connect', host: 'lab1', message: /host key of 10\.200\.\d+\.11 is unknown \(SHA256:.*--accept-new-host-keys/ });
  const conn = await connectSsh(endpoint('lab1', { knownHostsPaths: [empty] }), { acceptNewHostKeys: true });
  await conn.close();
  t.match(await readFile(empty, 'utf8'), new RegExp(`^${lab.host('lab1').address.replace(/\./g, '\\.')} ssh-ed25519 `), 'recorded');
  const again = await connectSsh(endpoint('lab1', { knownHostsPaths: [empty] }));
  await again.close();

  // lab2's key filed under lab1's address: a changed key, refused even with the flag.
  const wrong = join(tmp, 'known_hosts_wrong');
  const lines = (await readFile(lab.knownHostsPath, 'utf8')).split('\n');
  const lab2Key = lines.find((l) => l.startsWith(`${lab.host('lab2').address} `))?.split(' ').slice(1).join(' ');
  await writeFile(wrong, `${lab.host('lab1').address} ${lab2Key}\n`);
  await t.rejects(connectSsh(endpoint('lab1', { knownHostsPaths: [wrong] }), { acceptNewHostKeys: true }), { host: 'lab1', message: /HOST KEY CHANGED/ });

  // Only an ECDSA key known, the host serves ed25519 only: OpenSSH refuses this too.
  const ecdsa = join(tmp, 'ecdsa_key');
  await run('ssh-keygen', ['-q', '-t', 'ecdsa', '-N', '', '-f', ecdsa]);
  const otherType = join(tmp, 'known_hosts_other_type');
  await writeFile(otherType, `${lab.host('lab1').address} ${(await readFile(`${ecdsa}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ')}\n`);
  await t.rejects(connectSsh(endpoint('lab1', { knownHostsPaths: [otherType] }), { acceptNewHostKeys: true }), { host: 'lab1', message: /changed type/ });
});

t.test('a wrong private key gives an error naming the host', async (t) => {
  const other = join(tmp, 'other_key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
  await t.rejects(connectSsh(endpoint('lab3', { privateKeyPaths: [other] })), { phase: 'connect', host: 'lab3', message: /lab3: authentication as root failed/ });
  await t.rejects(connectSsh(endpoint('lab3', { privateKeyPaths: [join(tmp, 'missing')] })), { host: 'lab3', message: /cannot read private key/ });
});

t.test('jump host: reach lab3 through lab1', async (t) => {
  const conn = await connectSsh(endpoint('lab3', { jump: endpoint('lab1') }));
  t.teardown(() => conn.close());
  const r = await conn.exec(sh`hostname; echo $SSH_CONNECTION`);
  t.match(r.stdout, new RegExp(`^lab3\\n${lab.host('lab1').address.replace(/\./g, '\\.')} `), 'lab3 sees the connection coming from lab1');
});

t.test('a host that goes silent mid-command: keepalives notice, the command fails instead of hanging', async (t) => {
  const conn = await connectSsh(endpoint('lab2'), { keepaliveIntervalMs: 500 });
  t.teardown(() => conn.close());
  const started = Date.now();
  // Handled at once: the rejection may come while the host is still being stopped.
  const pending = conn.exec(sh`sleep 60`).then(() => 'resolved', (err: unknown) => err);
  await new Promise((r) => setTimeout(r, 300));
  // Cut the link without killing anything: no FIN, no RST, just silence, as when a VPS freezes.
  const veth = `tkl-${lab.index}-h2`;
  await run('ip', ['link', 'set', veth, 'down']);
  t.teardown(() => run('ip', ['link', 'set', veth, 'up']));
  t.match(await pending, { phase: 'connect', host: 'lab2', message: /connection to 10\.200\.\d+\.12 (lost|closed)/ });
  t.ok(Date.now() - started < 15_000, 'noticed within seconds (keepalives), not after the command would have ended');
  t.match(await conn.exec(sh`true`).catch((err: unknown) => err), { phase: 'connect' }, 'later commands fail at once too');
});

t.test('a stopped host: plain-language timeout naming the host', async (t) => {
  await lab.stop('lab2');
  t.teardown(() => lab.start('lab2'));
  await t.rejects(connectSsh(endpoint('lab2'), { connectTimeoutMs: 2000 }), { phase: 'connect', host: 'lab2', message: /lab2: no SSH answer from 10\.200\.\d+\.12:22 within 2 s/ });
});


t.test('an alias of ~/.ssh/config resolves as OpenSSH would, with ProxyJump', async (t) => {
  const { sshEndpoint } = await import('../../lib/connection/open.ts');
  const { defineInventory } = await import('../../lib/inventory/inventory.ts');
  const config = join(tmp, 'ssh_config');
  await writeFile(
    config,
    `Host bastion\n  HostName ${lab.host('lab1').address}\n  User root\n  IdentityFile ${lab.privateKeyPath}\n\nHost app\n  HostName ${lab.host('lab3').address}\n  User admin\n  ProxyJump bastion\n  IdentityFile ${lab.privateKeyPath}\n\nHost *\n  Port 22\n`,
  );
  const inv = defineInventory({ hosts: { app: { address: 'app', knownHostsPath: lab.knownHostsPath } } });
  const ctx = { home: tmp, localUser: 'nobody', sshConfigFile: config };
  const ep = await sshEndpoint('app', inv.hosts.get('app')?.spec ?? {}, inv, ctx);
  t.match(ep, { address: lab.host('lab3').address, user: 'admin', privateKeyPaths: [lab.privateKeyPath], jump: { address: lab.host('lab1').address, user: 'root' } });
  const conn = await connectSsh({ ...ep, knownHostsPaths: [lab.knownHostsPath], jump: ep.jump ? { ...ep.jump, knownHostsPaths: [lab.knownHostsPath] } : undefined } as SshEndpoint);
  t.teardown(() => conn.close());
  t.equal((await conn.exec(sh`id -un; hostname`)).stdout, 'admin\nlab3\n');
});

t.test('ssh-agent authentication (SSH_AUTH_SOCK) with no key file', async (t) => {
  const agent = await run('ssh-agent', ['-s']);
  const sock = /SSH_AUTH_SOCK=([^;]+);/.exec(agent.stdout)?.[1] ?? '';
  const pid = /SSH_AGENT_PID=(\d+);/.exec(agent.stdout)?.[1] ?? '';
  t.teardown(() => process.kill(Number(pid)));
  const added = await run('env', [`SSH_AUTH_SOCK=${sock}`, 'ssh-add', lab.privateKeyPath]);
  t.equal(added.code, 0, 'key added to the agent');
  const conn = await connectSsh(endpoint('lab2', { privateKeyPaths: [], agent: sock }));
  t.teardown(() => conn.close());
  t.equal((await conn.exec(sh`whoami`)).stdout, 'root\n');
});
