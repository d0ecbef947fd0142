// The nightly schedule end to end on a lab host: scripts/install-backup-schedule.ts through the
// CLI installs a systemd timer from a cron expression; systemd itself is the oracle.
import { homedir } from 'node:os';
import t from 'tap';
import { defineTask, openConnection, runTask, type Inventory } from '../../lib/index.ts';
import { schedule } from '../../lib/ops/schedule.ts';
import { withLab } from '../../lab/lab.ts';
import { changedSteps, labInventory, runTaskCli, plannedSteps } from './support/cli.ts';

const lab = await withLab(t, 1);
const UNIT = 'tackle-nightly-backup';
// The real command runs tackle from a checkout; here a command whose effect the test can see.
const job = (cron: string) => ({ backupSchedule: { cron, workingDirectory: '/var/tmp', command: 'date -u +%FT%TZ >> /var/tmp/nightly-runs' } });
const install = async (cron: string, ...args: string[]) => runTaskCli('scripts/install-backup-schedule.ts', ['--inventory', await labInventory(lab, { lab1: { vars: job(cron) } }), ...args]);
const onHost = async (command: string) => (await lab.ssh('lab1', command)).stdout;

t.test('the timer is installed from a cron expression, listed by systemd, runs the command; a second run changes nothing', async (t) => {
  const dry = await install('0 2 * * *', '--dry-run');
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout, stderr: dry.stderr });
  t.match(dry.stdout, /schedule\.timer tackle-nightly-backup — create \/etc\/systemd\/system\/tackle-nightly-backup\.service .*enable and start tackle-nightly-backup\.timer; OnCalendar=\*-\*-\* 02:00:00; next runs: \w{3} \d{4}-\d\d-\d\d 02:00:00 UTC, \w{3} \d{4}-\d\d-\d\d 02:00:00 UTC, \w{3} \d{4}-\d\d-\d\d 02:00:00 UTC\n/, 'the plan shows the next three runs');
  t.equal(await onHost(`test -e /etc/systemd/system/${UNIT}.timer; echo $?`), '1\n', 'the dry-run wrote nothing');

  const real = await install('0 2 * * *');
  t.equal(real.code, 0, 'exit code', { stdout: real.stdout, stderr: real.stderr });
  t.same(plannedSteps(real.report), plannedSteps(dry.report), 'the dry-run predicted the change');
  t.same(changedSteps(real.report).lab1, [`schedule.timer ${UNIT}`]);
  t.match(await onHost('systemctl list-timers --all --no-pager'), new RegExp(`\\s${UNIT}\\.timer\\s+${UNIT}\\.service`), 'systemctl list-timers lists it');
  t.equal(await onHost(`systemctl is-enabled ${UNIT}.timer; systemctl is-active ${UNIT}.timer`), 'enabled\nactive\n');
  t.match(await onHost(`systemctl show -P TimersCalendar ${UNIT}.timer`), /^\{ OnCalendar=\*-\*-\* 02:00:00 ; next_elapse=.+ \}\n$/);
  t.match(await onHost(`systemctl show -P NextElapseUSecRealtime ${UNIT}.timer`), / 02:00:00 /);

  // The service the timer starts runs the command (as the timer would at 02:00).
  t.equal(await onHost(`systemctl start ${UNIT}.service; systemctl show -P Result ${UNIT}.service; wc -l < /var/tmp/nightly-runs`), 'success\n1\n');

  const again = await install('0 2 * * *');
  t.equal(again.code, 0);
  t.same(changedSteps(again.report), { lab1: [] }, 'second run: nothing changed');
});

t.test('a new schedule re-arms the timer; a malformed cron expression is refused before any host is contacted', async (t) => {
  const moved = await install('30 3 * * 1-5');
  t.equal(moved.code, 0);
  t.same(changedSteps(moved.report).lab1, [`schedule.timer ${UNIT}`]);
  t.match(await onHost(`systemctl show -P TimersCalendar ${UNIT}.timer`), /OnCalendar=Mon\.\.Fri \*-\*-\* 03:30:00/);
  t.match(await onHost(`systemctl show -P NextElapseUSecRealtime ${UNIT}.timer`), / 03:30:00 /, 'systemd took the new schedule');

  const before = await onHost(`cat /etc/systemd/system/${UNIT}.timer`);
  const bad = await install('0 25 * * *');
  t.equal(bad.code, 1, 'exit code 1: nothing ran');
  t.match(bad.stderr, /host lab1: var backupSchedule\.cron must be a valid cron expression \(schedule: cron expression "0 25 \* \* \*" is invalid: Constraint error, got value 25 expected range 0-23\)/);
  t.equal(bad.report, undefined, 'no host was contacted');
  t.equal(await onHost(`cat /etc/systemd/system/${UNIT}.timer`), before, 'the installed timer is untouched');
});

t.test('an OnCalendar the host systemd rejects fails the step, naming host and step, before anything changes', async (t) => {
  const inventory = (await import(await labInventory(lab))).default as Inventory;
  const task = defineTask({
    name: 'bad-calendar',
    async run(host) {
      await host.run(schedule.timer({ name: 'bad-calendar', onCalendar: 'Mon *-*-* 25:61', command: ['/bin/true'] }));
    },
  });
  const result = await runTask(task, [...inventory.hosts.values()], { connect: (h) => openConnection(h, inventory, { home: homedir(), localUser: 'root', acceptNewHostKeys: false }) });
  const step = result.hosts[0]?.steps[0];
  t.equal(step?.status, 'failed');
  t.match(step?.error?.message, /^lab1 › schedule\.timer bad-calendar: the schedule "Mon \*-\*-\* 25:61" is not valid for systemd: Failed to parse calendar specification 'Mon \*-\*-\* 25:61': Invalid argument/);
  t.equal(await onHost('ls /etc/systemd/system | grep -c bad-calendar || true'), '0\n', 'no unit file written');
});
