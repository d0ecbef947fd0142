// fail2ban's sshd jail proven the way an attacker meets it. lab1 is provisioned with
// tasks/provision.ts (fail2ban's default maxretry 5 in findtime 10m, bantime 1h); lab2 fails
// logins at it and must be banned (its next connection refused), lab3 is a `trusted` address and
// is never banned after the same attack; then lab1 reboots and all of it holds again.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { poll } from '../../lab/exec.ts';
import { withLab } from '../../lab/lab.ts';
import { labInventory, runTaskCli } from './support/cli.ts';
import { ATTEMPTS, BAN_WITHIN_MS, CLIENT, labPeer, sshdJail } from './support/fail2ban.ts';

const lab = await withLab(t, 3);
const jail = sshdJail(lab, 'lab1');
const inventory = await labInventory(lab, { lab1: { vars: { trusted: [lab.bridgeAddress, lab.host('lab3').address] } } });
// lab2 and lab3 get the lab's key, so that "logs in" below is a real login from their address.
const [attacker, trusted] = await Promise.all([labPeer(lab, 'lab2', false), labPeer(lab, 'lab3', true)]);

t.test('provision lab1 (trusted: the controller and lab3)', async (t) => {
  const run = await runTaskCli('tasks/provision.ts', ['--inventory', inventory, '--limit', 'lab1']);
  t.equal(run.code, 0, 'provision', { stdout: run.stdout.slice(-4000), stderr: run.stderr });
});

t.test('the jail reads sshd from the journal under every name it logs with', async (t) => {
  // Debian 12's filter default is `_SYSTEMD_UNIT=sshd.service + _COMM=sshd`: the unit there is
  // ssh.service, so only the process name matches; OpenSSH 9.8+ logs failures as sshd-session.
  const out = (await lab.ssh('lab1', 'fail2ban-client get sshd journalmatch')).stdout; // "Current match filter:\nA + B"
  const terms = out.split('\n').slice(1).join(' ').trim().split(/\s+\+\s+/);
  for (const term of ['_SYSTEMD_UNIT=ssh.service', '_COMM=sshd', '_COMM=sshd-session']) t.ok(terms.includes(term), `journalmatch names ${term}`, { journalmatch: out });
  t.equal((await lab.ssh('lab1', 'systemctl is-enabled fail2ban')).stdout, 'enabled\n', 'fail2ban starts at boot');
});

t.test('a failure logged the way OpenSSH 9.8+ logs it (process sshd-session) is counted too', async (t) => {
  // Debian 12 runs OpenSSH 9.2, so the line is logged by a stand-in: logger renamed sshd-session, in a
  // unit of its own, so that neither the ssh unit nor the name sshd matches. 192.0.2.0/24 is TEST-NET-1.
  const fake = '192.0.2.7';
  const script = [
    'install -D -m 755 /usr/bin/logger /run/tackle-test/sshd-session',
    `for i in $(seq 6); do systemd-run --quiet --wait --collect /run/tackle-test/sshd-session -t sshd-session "Invalid user intruder from ${fake} port 4000$i"; done`,
    'journalctl --no-pager -o verbose -n 1 _COMM=sshd-session | grep -E "^ *(_COMM|_SYSTEMD_UNIT)="',
  ].join('\n');
  const logged = await lab.ssh('lab1', script);
  t.match(logged.stdout, /_COMM=sshd-session\n/, 'the journal has the lines under _COMM=sshd-session', { stderr: logged.stderr });
  // journald may not attribute a process that already exited to its unit (no _SYSTEMD_UNIT at all):
  // either way the line is not ssh.service's, so only the _COMM=sshd-session term can match it.
  t.notMatch(logged.stdout, /_SYSTEMD_UNIT=ssh\.service/, 'outside ssh.service');
  await jail.waitForBan(t, fake);
  await lab.ssh('lab1', `fail2ban-client set sshd unbanip ${fake}; rm -rf /run/tackle-test`);
});

t.test('before any attack, lab2 and lab3 both log in', async (t) => {
  t.equal(await jail.login(attacker), 'in');
  t.equal(await jail.login(trusted), 'in');
});

t.test('an attacker failing logins is banned: its next connection is refused', async (t) => {
  await jail.attackUntilBanned(t, attacker);
  await jail.refused(t, attacker);
  t.equal(await jail.login(trusted), 'in', 'other addresses still log in');
});

t.test('a trusted address failing the same logins is never banned', (t) => jail.trustedAttack(t, trusted));

t.test('after a reboot: fail2ban is up, the ban holds, a new attack is banned, the trusted address is not', async (t) => {
  await jail.reboot(t);
  // bantime is 1h: fail2ban restores the ban from its database, as an operator expects.
  t.ok(await jail.bannedWithin(attacker.address), 'lab2 is still banned after the reboot');
  t.equal(await jail.login(attacker), 'refused', 'lab2 still refused');
  t.equal(await jail.login(trusted), 'in', 'lab3 logs in');

  await lab.ssh('lab1', `fail2ban-client set sshd unbanip ${attacker.address}`);
  t.equal(await jail.login(attacker), 'in', 'unbanned, lab2 logs in again: the refusal was the ban');

  await jail.attackUntilBanned(t, attacker);
  t.equal(await jail.login(attacker), 'refused', 'lab2 is banned again');

  await jail.trustedAttack(t, trusted);
});

t.test('a jail whose ban action has no firewall command fails the run: it would list bans and block nothing', async (t) => {
  // lab2 has no ufw and so no iptables: Debian 12's fail2ban recommends nftables, yet bans with
  // iptables-multiport. The jail alone, without provision's ufw, on lab2.
  const dir = await mkdtemp(join(tmpdir(), 'tackle-f2b-'));
  const task = join(dir, 'jail.mts');
  await writeFile(
    task,
    `import { apt, defineTask, fail2ban, isMain, runCli } from ${JSON.stringify(resolve(import.meta.dirname, '../../lib/index.ts'))};
const task = defineTask({
  name: 'jail',
  async run(host) {
    await host.run(apt.packages({ names: ['fail2ban', 'python3-systemd'] }));
    await host.run(fail2ban.jail({ name: 'sshd', notify: 'reload fail2ban' }));
  },
  handlers: { 'reload fail2ban': (host) => host.run(fail2ban.reload()) },
});
if (isMain(import.meta.url, process.argv)) process.exitCode = await runCli(task, { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr });
`,
  );
  const run = await runTaskCli(task, ['--inventory', inventory, '--limit', 'lab2']);
  t.equal(run.code, 2, 'the run fails', { stdout: run.stdout.slice(-3000), stderr: run.stderr });
  const failed = run.report?.hosts[0]?.steps.find((s) => s.status === 'failed');
  t.match(failed, { name: 'reload fail2ban › fail2ban.reload', error: { reason: /^fail2ban's jail sshd bans with iptables-multiport, which needs iptables, not installed: banned addresses would not be blocked/ } });

  // What the check prevents: lab3 fails logins at lab2, is listed as banned, and still logs in.
  await lab.ssh('lab3', `for i in $(seq ${ATTEMPTS}); do ssh ${CLIENT} intruder@${attacker.address} true; done`);
  await poll(async () => ((await lab.ssh('lab2', 'fail2ban-client get sshd banip')).stdout.includes(trusted.address) ? true : undefined), {
    timeoutMs: BAN_WITHIN_MS,
    intervalMs: 1000,
    onTimeout: () => new Error('lab2 never listed lab3 as banned'),
  });
  const through = await lab.ssh('lab3', `ssh ${CLIENT} -i ${trusted.keyPath} root@${attacker.address} echo in`);
  t.equal(through.stdout, 'in\n', 'lab3 is "banned" on lab2 and logs in all the same');
});
