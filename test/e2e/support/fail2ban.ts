// fail2ban's sshd jail as an attacker meets it: logins and bursts of failed logins at one lab
// host from peers (other lab hosts, or this machine on the lab's bridge), and what the jail made
// of them. Shared by the hardening tests of each Debian release.
import { readFile } from 'node:fs/promises';
import type { Test } from 'tap';
import { delay, poll, run, type RunResult } from '../../../lab/exec.ts';
import type { Lab } from '../../../lab/lab.ts';

/** How long fail2ban may take to ban after the failures (10 s or less seen here). */
export const BAN_WITHIN_MS = 60_000;
/** ufw's `limit` on port 22 rejects a 6th connection within 30 s: a block that must not be taken for a ban. */
const UFW_LIMIT_WINDOW_MS = 30_000;
/** Failed logins in one burst: more than maxretry (5) even when ufw's limit cuts the burst short. */
export const ATTEMPTS = 8;
/** Bursts an attacker makes before the test gives up on a ban. */
const BURSTS = 3;

/** OpenSSH client options for a non-interactive attempt that trusts any host key. */
export const CLIENT = `-n -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 -o LogLevel=ERROR`;

/** Where logins come from: a lab host, or this machine; `trusted` when the target's jail and ufw trust its address. */
export interface Peer {
  name: string;
  address: string;
  trusted: boolean;
  /** The lab's private key there, for a login that must succeed unless the address is blocked. */
  keyPath: string;
  /** Runs a shell command there. */
  sh(command: string): Promise<RunResult>;
}

/** A lab host as a peer, given the lab's key at /root/.ssh/lab_key so that its logins are real ones. */
export async function labPeer(lab: Lab, name: string, trusted: boolean): Promise<Peer> {
  const keyPath = '/root/.ssh/lab_key';
  await lab.ssh(name, `umask 077 && cat > ${keyPath}`, { input: await readFile(lab.privateKeyPath, 'utf8') });
  return { name, address: lab.host(name).address, trusted, keyPath, sh: (command) => lab.ssh(name, command) };
}

/** This machine as a peer: it reaches lab hosts from the lab's bridge address. */
export function controllerPeer(lab: Lab, trusted: boolean): Peer {
  return { name: 'the controller', address: lab.bridgeAddress, trusted, keyPath: lab.privateKeyPath, sh: (command) => run('sh', ['-c', command]) };
}

const sleepUntil = (when: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, when - Date.now())));

/**
 * The sshd jail of lab host `targetName`, attacked by peers. Remembers when each peer last
 * connected, to keep an untrusted peer's burst clear of ufw's rate limit.
 *
 * @example const jail = sshdJail(lab, 'lab1'); await jail.attackUntilBanned(t, await labPeer(lab, 'lab2', false));
 */
export function sshdJail(lab: Lab, targetName: string) {
  const target = lab.host(targetName).address;
  /** When each peer last opened a connection to the target's port 22, for ufw's rate limit. */
  const lastConnection = new Map<string, number>();
  const onTarget = (command: string) => lab.ssh(targetName, command);

  /** A key login from `from` to the target, as the SSH client there sees it. */
  async function login(from: Peer): Promise<'in' | 'refused' | 'timed out' | string> {
    lastConnection.set(from.name, Date.now());
    const r = await from.sh(`ssh ${CLIENT} -i ${from.keyPath} root@${target} echo in`);
    if (r.stdout === 'in\n') return 'in';
    return /Connection refused/.test(r.stderr) ? 'refused' : /timed out/.test(r.stderr) ? 'timed out' : r.stderr.trim();
  }

  /**
   * {@link ATTEMPTS} logins as a user that does not exist, one connection each. An untrusted peer
   * first stays quiet for ufw's window, else ufw rejects part of the burst before sshd sees it.
   * Resolves with how many sshd refused (the failures fail2ban can count) and what the client saw.
   */
  async function attack(from: Peer): Promise<{ denied: number; outcomes: string[] }> {
    if (!from.trusted) await sleepUntil((lastConnection.get(from.name) ?? 0) + UFW_LIMIT_WINDOW_MS + 1000);
    lastConnection.set(from.name, Date.now());
    const r = await from.sh(`for i in $(seq ${ATTEMPTS}); do ssh ${CLIENT} intruder@${target} true 2>&1 | tail -n 1; done`);
    lastConnection.set(from.name, Date.now());
    const outcomes = r.stdout.trim().split('\n');
    return { denied: outcomes.filter((o) => /Permission denied/.test(o)).length, outcomes };
  }

  const banned = async (): Promise<string[]> => {
    const r = await onTarget('fail2ban-client get sshd banip');
    if (r.code !== 0) throw new Error(`fail2ban-client get sshd banip exited ${r.code}: ${r.stderr}`);
    return r.stdout.trim().split(/\s+/).filter(Boolean);
  };

  /** sshd's and fail2ban's count of `address`'s failed logins so far, for a failure message. */
  const tally = async (address: string): Promise<string> =>
    (
      await onTarget(
        `echo "sshd logged $(journalctl -q --no-pager SYSLOG_IDENTIFIER=sshd SYSLOG_IDENTIFIER=sshd-session | grep -c 'Invalid user intruder from ${address} ') failed logins from ${address}, ` +
          `fail2ban found $(grep -c 'Found ${address} ' /var/log/fail2ban.log)"`,
      )
    ).stdout.trim();

  const fail2banLog = async (): Promise<string> => (await onTarget('tail -n 30 /var/log/fail2ban.log')).stdout;

  /** Whether fail2ban lists `address` as banned within {@link BAN_WITHIN_MS}. */
  async function bannedWithin(address: string): Promise<boolean> {
    const until = Date.now() + BAN_WITHIN_MS;
    for (;;) {
      if ((await banned()).includes(address)) return true;
      if (Date.now() > until) return false;
      await delay(1000);
    }
  }

  /**
   * An attacker that keeps going, as real ones do: bursts of {@link attack} until fail2ban lists its
   * address as banned, each followed by a wait for fail2ban to read the journal. One burst is normally
   * enough; on a loaded machine fail2ban 1.0.2 was once seen to miss one failure of a burst (sshd
   * logged 5, fail2ban found 4), and then the next burst bans.
   */
  async function attackUntilBanned(t: Test, from: Peer): Promise<void> {
    for (let burst = 1; burst <= BURSTS; burst++) {
      const { denied, outcomes } = await attack(from);
      const burstEnd = Date.now();
      if (burst === 1) t.ok(denied >= 5, `at least maxretry (5) failed logins reached sshd (${denied} of ${ATTEMPTS})`, { outcomes });
      if (await bannedWithin(from.address)) {
        t.pass(`${from.address} banned ${((Date.now() - burstEnd) / 1000).toFixed(0)}s after burst ${burst}`);
        return;
      }
      t.comment(`not banned ${BAN_WITHIN_MS / 1000}s after burst ${burst}: ${await tally(from.address)}`);
    }
    t.fail(`${from.address} not banned after ${BURSTS} bursts: ${await tally(from.address)}`, { fail2banLog: await fail2banLog() });
  }

  /** Waits until fail2ban has banned `address`, which failed logins some other way. */
  async function waitForBan(t: Test, address: string): Promise<void> {
    const started = Date.now();
    if (await bannedWithin(address)) t.pass(`${address} banned ${((Date.now() - started) / 1000).toFixed(0)}s after its failures`);
    else t.fail(`${address} not banned within ${BAN_WITHIN_MS / 1000}s`, { fail2banLog: await fail2banLog() });
  }

  /** How many failures from `address` fail2ban has read and ignored so far (its log says so). */
  const ignored = async (address: string): Promise<number> => Number((await onTarget(`grep -cF 'Ignore ${address} by ip' /var/log/fail2ban.log`)).stdout.trim());

  /** Waits until fail2ban has ignored `count` failures from `address` in all. */
  async function waitForIgnored(address: string, count: number): Promise<void> {
    await poll(async () => ((await ignored(address)) >= count ? true : undefined), {
      timeoutMs: BAN_WITHIN_MS,
      intervalMs: 1000,
      onTimeout: async () => new Error(`fail2ban never logged "Ignore ${address} by ip" ${count} times; fail2ban.log ends with:\n${await fail2banLog()}`),
    });
  }

  /**
   * A trusted peer fails {@link ATTEMPTS} logins: every one reaches sshd (no ufw limit for it),
   * fail2ban reads and ignores them, it is not banned and still logs in.
   */
  async function trustedAttack(t: Test, from: Peer): Promise<void> {
    const before = await ignored(from.address);
    const { denied, outcomes } = await attack(from);
    t.equal(denied, ATTEMPTS, `every failed login from ${from.name} reached sshd (trusted: no ufw limit)`, { outcomes });
    await waitForIgnored(from.address, before + 5);
    t.notOk((await banned()).includes(from.address), `${from.name} is not in the ban list`);
    t.equal(await login(from), 'in', `${from.name} still logs in`);
  }

  /** After {@link attackUntilBanned}: the peer's next connection is refused, and still is once ufw's rate limit no longer could refuse it. */
  async function refused(t: Test, from: Peer): Promise<void> {
    const attackEnd = lastConnection.get(from.name) ?? 0;
    t.equal(await login(from), 'refused', `${from.name} cannot even log in with a valid key`);
    // ufw's limit also refuses the attacker for 30 s after its burst; only the ban still refuses after that.
    await sleepUntil(attackEnd + UFW_LIMIT_WINDOW_MS + 2000);
    t.equal(await login(from), 'refused', 'still refused once ufw’s rate-limit window is over');
  }

  /** Reboots the target the clean way and waits until its jail answers again: fail2ban starts at boot. */
  async function reboot(t: Test): Promise<void> {
    const bootedAt = async () => (await onTarget('ps -o lstart= -p 1')).stdout;
    const before = await bootedAt();
    await lab.reboot(targetName);
    t.not(await bootedAt(), before, `${targetName} booted again (its init started anew)`);
    await poll(async () => ((await onTarget('fail2ban-client status sshd')).code === 0 ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 1000,
      onTimeout: async () => new Error(`fail2ban did not come up after the reboot: ${(await onTarget('systemctl status fail2ban; tail -n 20 /var/log/fail2ban.log')).stdout}`),
    });
    t.pass('fail2ban came up at boot');
  }

  return { reboot, login, banned, bannedWithin, attackUntilBanned, refused, waitForBan, trustedAttack };}
