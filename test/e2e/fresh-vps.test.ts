// Hosts as a provider delivers them (lab/fresh.ts): on the first boot apt refreshes its lists,
// installs unattended-upgrades and runs apt's daily jobs, so the first provisioning run meets a
// held dpkg lock; and debconf asks its questions. tasks/provision.ts must converge there without
// hanging, wait for the lock only as long as `aptLockTimeout` says, and then fail that host alone
// with a message naming the holder.
import t from 'tap';
import { FIRST_BOOT_UNIT } from '../../lab/fresh.ts';
import { poll } from '../../lab/exec.ts';
import { withLab } from '../../lab/lab.ts';
import { changedSteps, labInventory, runTaskCli } from './support/cli.ts';
import { writeTaskFile } from './support/task-file.ts';

// A first boot under load upgrades packages for many minutes; every wait below is bounded.
t.setTimeout(45 * 60_000);
const lab = await withLab(t, 2, { fresh: true });
const [first, second] = lab.hosts.map((h) => h.name);
if (!first || !second) throw new Error('two lab hosts expected');
const sh = async (host: string, command: string) => (await lab.ssh(host, command)).stdout.trim();
const firstBootState = (host: string) => sh(host, `systemctl show -p ActiveState --value ${FIRST_BOOT_UNIT}`);
const seconds = (since: number) => Math.round((Date.now() - since) / 1000);

t.test('provision converges while the first boot holds the dpkg lock; the second run changes nothing', async (t) => {
  const inventory = await labInventory(lab, { [first]: { vars: { trusted: [lab.bridgeAddress] } } });
  // The race is met: apt is still busy with the first boot when provisioning starts.
  t.equal(await firstBootState(first), 'activating', `${first}: the first boot's apt run is still going`);
  const started = Date.now();
  const real = await runTaskCli('tasks/provision.ts', ['--inventory', inventory, '--limit', first]);
  t.equal(real.code, 0, 'first run', { stdout: real.stdout.slice(-3000), stderr: real.stderr.slice(-3000) });
  t.comment(`first run took ${seconds(started)} s`);
  t.match(await sh(first, 'journalctl --no-pager -o cat -u apt-daily.service'), /Starting apt-daily.service/, `${first}: apt's daily job ran on this boot`);
  t.match(await sh(first, "dpkg-query -W -f='${db:Status-Status} ' ufw fail2ban unattended-upgrades"), /^installed installed installed$/, 'the packages are installed');
  t.equal(await sh(first, 'ufw status | head -1'), 'Status: active');
  t.equal(await sh(first, 'debconf-show debconf | grep frontend'), '* debconf/frontend: Dialog', 'the host keeps its asking debconf');
  const again = await runTaskCli('tasks/provision.ts', ['--inventory', inventory, '--limit', first]);
  t.equal(again.code, 0, 'second run', { stderr: again.stderr.slice(-3000) });
  t.same(changedSteps(again.report), { [first]: [] }, 'second run: 0 changed steps');
});

t.test('a package that asks a debconf question at install is installed without hanging', async (t) => {
  // iptables-persistent asks "Save current IPv4 rules?" at priority high, which Dialog shows (see the last check).
  const task = await writeTaskFile('asks', ['apt'], `{ name: 'asks', async run(host) { await host.run(apt.packages({ names: ['iptables-persistent'] })); } }`);
  const inventory = await labInventory(lab);
  const started = Date.now();
  const run = await runTaskCli(task, ['--inventory', inventory, '--limit', second]);
  t.equal(run.code, 0, 'installed', { stdout: run.stdout.slice(-3000), stderr: run.stderr.slice(-3000) });
  t.ok(seconds(started) < 900, `done in ${seconds(started)} s`);
  t.equal(await sh(second, "dpkg-query -W -f='${db:Status-Status}' iptables-persistent"), 'installed');
  t.match(await sh(second, 'cat /var/lib/dpkg/info/iptables-persistent.config /var/lib/dpkg/info/iptables-persistent.postinst 2>/dev/null'), /db_input high iptables-persistent\/autosave_v4/, 'its question is asked at priority high');
  t.match(await sh(second, 'debconf-show iptables-persistent'), /autosave_v4: true/, 'and answered with its default');
});

t.test('a lock held past aptLockTimeout fails that host with a clear message; the other host carries on', async (t) => {
  // Both hosts quiet first, so the only holder on the second host is ours.
  for (const h of [first, second]) {
    await poll(async () => ((await firstBootState(h)) === 'activating' ? undefined : true), { timeoutMs: 30 * 60_000, intervalMs: 5000, onTimeout: () => new Error(`${h}: first boot still running`) });
  }
  // apt locks with fcntl(2), which flock(1) does not conflict with: hold it the way apt does.
  await lab.ssh(second, `systemd-run --unit=hold-dpkg-lock python3 -c 'import fcntl, time; f = open("/var/lib/dpkg/lock-frontend", "w"); fcntl.lockf(f, fcntl.LOCK_EX); time.sleep(900)'`);
  const holder = await poll(async () => (await sh(second, 'systemctl show -p MainPID --value hold-dpkg-lock')) || undefined, { timeoutMs: 10_000, onTimeout: () => new Error('the lock holder did not start') });
  const inventory = await labInventory(lab, { [first]: { vars: { trusted: [lab.bridgeAddress] } }, [second]: { vars: { trusted: [lab.bridgeAddress], aptLockTimeout: 15 } } });
  const started = Date.now();
  const run = await runTaskCli('tasks/provision.ts', ['--inventory', inventory]);
  const took = seconds(started);
  t.equal(run.code, 2, 'the run reports a failed host', { stderr: run.stderr.slice(-3000) });
  const hosts = Object.fromEntries((run.report?.hosts ?? []).map((h) => [h.name, h]));
  t.equal(hosts[first]?.status, 'ok', `${first} carried on (already converged)`);
  t.equal(hosts[second]?.status, 'failed');
  const failed = hosts[second]?.steps.find((s) => s.status === 'failed');
  t.match(failed?.name, /^apt\.packages /, 'the apt step failed');
  t.match(failed?.error?.stderrTail, new RegExp(`apt is busy: /var/lib/dpkg/lock-frontend held by process ${holder} \\(python3\\) for \\d+ s \\(lock timeout 15 s\\)`), 'the message names the lock, its holder and the wait');
  t.match(run.stderr + run.stdout, /apt is busy/, 'the person running it sees the reason');
  t.ok(took < 75, `failed within a bounded time (${took} s for a 15 s timeout)`);
  t.equal(await sh(second, 'command -v ufw || echo none'), 'none', `${second}: nothing after the apt step ran`);
  await lab.ssh(second, 'systemctl stop hold-dpkg-lock');
});
