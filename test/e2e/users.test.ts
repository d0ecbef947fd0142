// users.user and users.authorizedKeys applied for real on a throwaway lab host (they create and
// delete accounts, so they do not run on the machine that runs the tests): each step run through
// an SSH connection, every outcome read on the host itself.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { secret } from '../../lib/command/command.ts';
import { openConnection } from '../../lib/connection/open.ts';
import type { StepResult } from '../../lib/engine/host-run.ts';
import type { Operation } from '../../lib/ops/operation.ts';
import { defineInventory } from '../../lib/inventory/inventory.ts';
import { users } from '../../lib/ops/users.ts';
import { runOp } from '../support/run-op.ts';
import { withLab } from '../../lab/lab.ts';

const lab = await withLab(t, 1);
const host = lab.hosts[0];
if (!host) throw new Error('no lab host');
const inventory = defineInventory({ hosts: { [host.name]: { address: host.address, privateKeyPath: lab.privateKeyPath, knownHostsPath: lab.knownHostsPath } } });
const hostSpec = inventory.hosts.get(host.name);
if (!hostSpec) throw new Error('no inventory host');
const connection = await openConnection(hostSpec, inventory, { home: '/root', localUser: 'root' });
t.teardown(() => connection.close());

const apply = (op: Operation, dryRun = false): Promise<StepResult> => runOp(op, { connection, dryRun });
/** stdout of a command on the lab host; a failing command fails the test. */
async function onHost(command: string): Promise<string> {
  const r = await lab.ssh(host!.name, command);
  if (r.code !== 0) throw new Error(`${command} on ${host!.name}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}
const why = (step: StepResult): string => step.error?.message ?? 'no error';

const HASH = '$6$tkltestsalt$SECRETHASHVALUEdoNotPrint';
const K1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl one@a';

t.test('create, converge, update and remove an account', async (t) => {
  const name = 'alice';
  const [g1, g2] = ['team1', 'team2'];
  await onHost(`groupadd ${g1} && groupadd ${g2}`);
  const desired = { name, groups: [g1], shell: '/bin/sh', password: secret(HASH) };

  const dry = await apply(users.user(desired), true);
  t.equal(dry.status, 'changed');
  t.same(dry.commands, [`useradd -G ${g1} -s /bin/sh -m ${name}`, 'chpasswd -e']);
  t.equal(await onHost(`getent passwd ${name} || true`), '', 'dry-run changed nothing');

  const first = await apply(users.user(desired));
  t.equal(first.status, 'changed', why(first));
  t.equal(first.name, `users.user ${name}`);
  t.match(await onHost(`getent passwd ${name}`), `:/home/${name}:/bin/sh`);
  t.equal((await onHost(`getent shadow ${name} | cut -d: -f2`)).trim(), HASH);
  t.equal((await apply(users.user(desired))).status, 'ok', 'second run changes nothing');

  const appended = await apply(users.user({ name, groups: [g2] }));
  t.equal(appended.summary, `update user ${name}: add to ${g2}`);
  t.same((await onHost(`id -Gn ${name}`)).trim().split(' ').sort(), [name, g1, g2].sort());
  const exactly = { name, groups: [g2], append: false, shell: '/bin/bash', password: secret('$6$other$hash') };
  const exact = await apply(users.user(exactly));
  t.equal(exact.summary, `update user ${name}: groups ${g1},${g2} → ${g2}, shell /bin/sh → /bin/bash, set password`);
  t.same((await onHost(`id -Gn ${name}`)).trim().split(' ').sort(), [name, g2].sort());
  t.equal((await apply(users.user(exactly))).status, 'ok');

  const removed = await apply(users.user({ name, present: false, removeHome: true }));
  t.equal(removed.status, 'changed', why(removed));
  t.equal(await onHost(`test -e /home/${name} && echo there || echo gone`), 'gone\n', 'home removed');
  t.equal((await apply(users.user({ name, present: false }))).status, 'ok');

  for (const step of [dry, first, exact]) t.notMatch(JSON.stringify(step), 'SECRETHASHVALUE', 'hash never in the step');
});

t.test('a missing group fails the step and names the group', async (t) => {
  const step = await apply(users.user({ name: 'bob', groups: ['nosuch'], password: secret(HASH) }));
  t.equal(step.status, 'failed');
  t.match(step.error?.message, `group 'nosuch' does not exist`);
  t.notMatch(JSON.stringify(step), 'SECRETHASHVALUE');
  t.notMatch(step.error?.message ?? '', 'SECRETHASHVALUE');
});

t.test('authorized_keys written atomically as the user, then converged', async (t) => {
  const name = 'carol';
  const home = `/home/${name}`;
  const keyDir = t.testdir({});
  const key = (n: string, type: string): string => {
    execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', n, '-f', join(keyDir, n)]);
    return readFileSync(join(keyDir, `${n}.pub`), 'utf8').trim();
  };
  const [a, b, c] = [key('a', 'ed25519'), key('b', 'ed25519'), key('c', 'ecdsa')];
  const keysFile = () => onHost(`cat ${home}/.ssh/authorized_keys`);

  // Dry-run on a fresh host, one step at a time: the account is only planned, so keys must still plan.
  const account = { name, shell: '/bin/bash' };
  const dryUser = await apply(users.user(account), true);
  const dryKeys = await apply(users.authorizedKeys({ user: account, keys: [a] }), true);
  t.equal(dryUser.status, 'changed');
  t.equal(dryKeys.status, 'changed', why(dryKeys));
  t.match(dryKeys.summary, `${home}/.ssh/authorized_keys: add 1 key`);

  t.equal((await apply(users.user(account))).status, 'changed');
  const first = await apply(users.authorizedKeys({ user: name, keys: [a, b] }));
  t.equal(first.status, 'changed', why(first));
  t.match(first.diff, `+${b}`);
  const stat = async (p: string): Promise<string> => (await onHost(`stat -c '%U %a' ${p}`)).trim();
  t.equal(await stat(`${home}/.ssh`), `${name} 700`);
  t.equal(await stat(`${home}/.ssh/authorized_keys`), `${name} 600`);
  t.equal(await keysFile(), `${a}\n${b}\n`);
  t.equal((await apply(users.authorizedKeys({ user: name, keys: [a, b] }))).status, 'ok', 'second run changes nothing');
  t.same((await onHost(`ls -A ${home}/.ssh`)).trim().split('\n'), ['authorized_keys'], 'no temp file left');

  const byHand = `# by hand\n${c}\n${a.replace(/ a$/, ' other comment')}\n`;
  await lab.ssh(host.name, `rm ${home}/.ssh/authorized_keys && cat > ${home}/.ssh/authorized_keys`, { input: byHand });
  t.equal((await apply(users.authorizedKeys({ user: name, keys: [a] }))).status, 'changed', 'root-owned file gets fixed');
  t.equal(await keysFile(), byHand, 'content kept');
  t.equal(await stat(`${home}/.ssh/authorized_keys`), `${name} 600`);
  await onHost(`chmod 755 ${home}/.ssh`);
  t.equal((await apply(users.authorizedKeys({ user: name, keys: [a] }))).summary, `${home}/.ssh/authorized_keys: fix owner and mode`);
  t.equal(await stat(`${home}/.ssh`), `${name} 700`);
  t.equal((await apply(users.authorizedKeys({ user: name, keys: [a] }))).status, 'ok');

  const exclusive = await apply(users.authorizedKeys({ user: name, keys: [b], exclusive: true }));
  t.equal(exclusive.status, 'changed', why(exclusive));
  t.equal(await keysFile(), `${b}\n`);
  const absent = await apply(users.authorizedKeys({ user: name, keys: [b], state: 'absent' }));
  t.equal(absent.status, 'changed');
  t.equal(await keysFile(), '');
  t.equal((await apply(users.authorizedKeys({ user: name, keys: [b], state: 'absent' }))).status, 'ok');
});

t.test('a symlinked ~/.ssh is refused, its target untouched', async (t) => {
  const name = 'dave';
  const home = `/home/${name}`;
  t.equal((await apply(users.user({ name }))).status, 'changed');
  await onHost(`mkdir /root/precious && echo precious > /root/precious/authorized_keys && ln -s /root/precious ${home}/.ssh`);
  const step = await apply(users.authorizedKeys({ user: name, keys: [K1] }));
  t.equal(step.status, 'failed');
  t.match(step.error?.message, 'is a symbolic link');
  t.equal(await onHost('cat /root/precious/authorized_keys'), 'precious\n');
  t.equal(await onHost(`test -L ${home}/.ssh && echo link`), 'link\n');
});

t.test('keys for a user that does not exist fail clearly when applied', async (t) => {
  const name = 'nobody_here';
  await onHost(`mkdir -p /tmp/${name}`);
  const step = await apply(users.authorizedKeys({ user: { name, home: `/tmp/${name}` }, keys: [K1] }));
  t.equal(step.status, 'failed');
  t.match(step.error?.message, 'no such user');
  t.equal(await onHost(`test -e /tmp/${name}/.ssh && echo there || echo nothing`), 'nothing\n', 'nothing created');
});
