import { Buffer } from 'node:buffer';
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { CronExpressionParser } from 'cron-parser';
import type { Change, Operation } from '../../../lib/ops/operation.ts';
import { TackleError } from '../../../lib/errors.ts';
import { sha256Hex, type PathInfo } from '../../../lib/facts/files.ts';
import type { Calendar } from '../../../lib/facts/schedule.ts';
import type { SystemdUnit } from '../../../lib/facts/systemd.ts';
import { cronFields, cronToCalendar, schedule } from '../../../lib/ops/schedule.ts';

t.test('cronToCalendar: cron expressions as systemd OnCalendar', async (t) => {
  const table: Array<[string, string[]]> = [
    ['0 2 * * *', ['*-*-* 02:00:00']],
    ['@daily', ['*-*-* 00:00:00']],
    ['*/15 1-5 * * 1-5', ['Mon..Fri *-*-* 01..05:00,15,30,45:00']],
    ['0 2 * * 7', ['Sun *-*-* 02:00:00']],
    ['0 0 * * 0,1,2,6', ['Mon,Tue,Sat,Sun *-*-* 00:00:00']],
    // Both day fields restricted: cron runs when either matches, so two OnCalendar lines.
    ['30 4 1,15 * 5', ['Fri *-*-* 04:30:00', '*-*-01,15 04:30:00']],
    // A day field starting with * makes cron require both (Vixie cron's DOM_STAR/DOW_STAR).
    ['0 12 */5 * 1', ['Mon *-*-01,06,11,16,21,26,31 12:00:00']],
    ['5 */2 */3 jan-mar *', ['*-01..03-01,04,07,10,13,16,19,22,25,28,31 00,02,04,06,08,10,12,14,16,18,20,22:05:00']],
    ['0 0 29 2 *', ['*-02-29 00:00:00']],
  ];
  for (const [cron, calendar] of table) t.same(cronToCalendar(cron), calendar, cron);
});

t.test('cron expressions are checked at once: refused saying what is wrong', async (t) => {
  t.throws(() => cronFields('61 2 * * *'), /cron expression "61 2 \* \* \*" is invalid: Constraint error, got value 61 expected range 0-59/);
  t.throws(() => cronFields('0 2 * *'), /must have five fields .*got 4/);
  t.throws(() => cronFields('0 0 L * *'), /"L" is not a standard cron field/);
  t.throws(() => cronFields('H 2 * * *'), /not a standard cron field/);
  t.throws(() => cronFields('0 0 * * 1#2'), /not a standard cron field/);
  t.throws(() => cronFields('every night'), TackleError);
  t.throws(() => schedule.timer({ name: 'x', cron: 'nope', command: 'true' }), TackleError);
  t.throws(() => schedule.cron({ name: 'x', cron: '* * *', command: 'true' }), TackleError);
});

// The host's systemd and cron-parser (Vixie semantics apart) agree on the runs; this machine's
// systemd-analyze is systemd 252, as on the hosts.
t.test('converted expressions give the same runs as cron would, by systemd-analyze', async (t) => {
  const base = '2024-01-01T00:00:30Z';
  for (const cron of ['0 2 * * *', '*/15 1-5 * * 1-5', '0 0 1,15 * 0', '30 4 1,15 * 5', '0 6 * * sun', '59 23 31 * *', '5 */2 */3 jan-mar *', '0 0 1 * 0-6']) {
    const out = execFileSync('systemd-analyze', ['calendar', '--iterations=8', `--base-time=${base.replace('T', ' ').replace('Z', ' UTC')}`, ...cronToCalendar(cron)], { env: { TZ: 'UTC', LC_ALL: 'C' } }).toString();
    const systemd = [...out.matchAll(/(?:Next elapse|Iter\. #\d+): \w+ (\S+) (\S+) UTC/g)]
      .map((m) => Date.parse(`${m[1]}T${m[2]}Z`))
      .sort((a, b) => a - b)
      .filter((x, i, all) => all.indexOf(x) === i)
      .slice(0, 8);
    const cronRuns = CronExpressionParser.parse(cron, { currentDate: base, tz: 'UTC' })
      .take(8)
      .map((d) => d.getTime());
    t.same(systemd, cronRuns, cron);
  }
});

const info = (content: string): PathInfo => {
  const bytes = Buffer.from(content);
  return { kind: 'file', mode: '0644', owner: 'root', group: 'root', uid: 0, gid: 0, size: bytes.length, sha256: sha256Hex(bytes), content: bytes.toString('base64') };
};
const unit = (unitFileState: string, activeState: string): SystemdUnit => ({
  kind: 'unit',
  id: 'nightly.timer',
  names: ['nightly.timer'],
  loadState: unitFileState ? 'loaded' : 'not-found',
  activeState,
  subState: activeState === 'active' ? 'waiting' : 'dead',
  fragmentPath: '',
  unitFileState,
  canReload: false,
  needDaemonReload: false,
});
const NEXT: Calendar = {
  kind: 'calendar',
  next: ['Mon 2026-11-23 02:00:00 UTC', 'Tue 2026-11-24 02:00:00 UTC', 'Wed 2026-11-25 02:00:00 UTC'].map((local) => ({ local, utcMs: 0 })),
};
/** Fact values for a timer op: its two files by path, the timer unit and the calendar. */
function facts(op: Operation, files: Record<string, PathInfo>, state: SystemdUnit, calendar: Calendar = NEXT): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(op.facts).map(([name, fact]) => {
      if (name === 'unit') return [name, state];
      if (name === 'calendar') return [name, calendar];
      const path = fact.key.replace(/^files\.path:/, '');
      return [name, files[path] ?? { kind: 'missing' }];
    }),
  );
}
const commands = (change: Change | undefined): string[] => (change?.actions ?? []).map((a) => a.command.toString());
const stdinOf = (change: Change | undefined, i: number): string => String(change?.actions[i]?.stdin ?? '');

const SERVICE = `# Managed by tackle (schedule.timer nightly); from cron: 0 2 * * *
[Unit]
Description=nightly backup

[Service]
Type=oneshot
WorkingDirectory=/srv/tackle
ExecStart=/bin/sh -c "npx tsx scripts/nightly-backup.ts --limit 'db*'"
`;
const TIMER = `# Managed by tackle (schedule.timer nightly); from cron: 0 2 * * *
[Unit]
Description=nightly backup timer

[Timer]
OnCalendar=*-*-* 02:00:00
Persistent=true

[Install]
WantedBy=timers.target
`;

t.test('schedule.timer installs a service and timer pair, enables it, and shows the next runs', async (t) => {
  const op = schedule.timer({ name: 'nightly', cron: '0 2 * * *', command: "npx tsx scripts/nightly-backup.ts --limit 'db*'", workingDirectory: '/srv/tackle', description: 'nightly backup' });
  t.equal(op.name, 'schedule.timer nightly');
  const fresh = op.plan(facts(op, {}, unit('', 'inactive')));
  t.equal(
    fresh?.summary,
    `create /etc/systemd/system/nightly.service (${Buffer.byteLength(SERVICE)} bytes, mode 0644), create /etc/systemd/system/nightly.timer (${Buffer.byteLength(TIMER)} bytes, mode 0644), enable and start nightly.timer; OnCalendar=*-*-* 02:00:00; next runs: Mon 2026-11-23 02:00:00 UTC, Tue 2026-11-24 02:00:00 UTC, Wed 2026-11-25 02:00:00 UTC`,
  );
  t.equal(stdinOf(fresh, 0), SERVICE);
  t.equal(stdinOf(fresh, 1), TIMER);
  const cmds = commands(fresh);
  t.equal(cmds.length, 4);
  t.match(cmds[1], `( sed -n 's/^OnCalendar=//p' "\${tackle_tmp}" | while IFS= read -r e; do systemd-analyze calendar "$e" >/dev/null || exit 1; done\n) </dev/null 1>&2 || {`, "the host's systemd validates the new timer file before it replaces the old one");
  t.same(cmds.slice(2), ['systemctl daemon-reload', 'systemctl enable --now nightly.timer']);
  t.match(fresh?.diff, /\+\+\+ \/etc\/systemd\/system\/nightly.timer\n@@ -0,0 \+1,10 @@\n\+# Managed by tackle/);

  const installed = { '/etc/systemd/system/nightly.service': info(SERVICE), '/etc/systemd/system/nightly.timer': info(TIMER) };
  t.equal(op.plan(facts(op, installed, unit('enabled', 'active'))), undefined, 'converged: nothing to do');
  t.same(commands(op.plan(facts(op, installed, unit('enabled', 'inactive')))), ['systemctl enable --now nightly.timer'], 'stopped timer: started');

  const moved = schedule.timer({ name: 'nightly', cron: '30 3 * * *', command: "npx tsx scripts/nightly-backup.ts --limit 'db*'", workingDirectory: '/srv/tackle', description: 'nightly backup' });
  const change = moved.plan(facts(moved, installed, unit('enabled', 'active')));
  t.same(commands(change).slice(-2), ['systemctl daemon-reload', 'systemctl restart nightly.timer'], 'a new schedule re-arms the running timer');
  t.match(change?.diff, /-OnCalendar=\*-\*-\* 02:00:00\n\+OnCalendar=\*-\*-\* 03:30:00/);
});

t.test('schedule.timer: a schedule systemd rejects fails the plan, naming it; nothing is changed', async (t) => {
  const op = schedule.timer({ name: 'nightly', onCalendar: '*-*-* 25:00', command: ['/usr/local/bin/backup', '--all'] });
  const invalid: Calendar = { kind: 'invalid', message: "Failed to parse calendar specification '*-*-* 25:00': Invalid argument" };
  t.throws(
    () => op.plan(facts(op, {}, unit('', 'inactive'), invalid)),
    new TackleError({ phase: 'operation', reason: `the schedule "*-*-* 25:00" is not valid for systemd: Failed to parse calendar specification '*-*-* 25:00': Invalid argument` }),
  );
  const noSystemd = op.plan(facts(op, {}, { kind: 'unavailable', reason: 'System has not been booted with systemd' }, { kind: 'unavailable', reason: 'systemd-analyze is not installed' }));
  t.match(noSystemd?.summary, /next runs: unknown$/);
  t.match(stdinOf(noSystemd, 0), /\nExecStart=\/usr\/local\/bin\/backup --all\n/, 'an argument vector runs as is');
});

t.test('schedule.timer arguments: quoting for systemd, one schedule, names', async (t) => {
  const op = schedule.timer({ name: 'q', onCalendar: ['Mon *-*-* 01:00', 'Fri *-*-* 01:00'], command: ['/bin/echo', '50%', 'a "b"', '$HOME'], user: 'backup', randomizedDelaySec: 600 });
  const change = op.plan(facts(op, {}, unit('', 'inactive')));
  t.match(stdinOf(change, 0), /\nUser=backup\nExecStart=\/bin\/echo 50%% "a \\"b\\"" \$\$HOME\n/);
  t.match(stdinOf(change, 1), /\nOnCalendar=Mon \*-\*-\* 01:00\nOnCalendar=Fri \*-\*-\* 01:00\nPersistent=true\nRandomizedDelaySec=600\n/);
  t.throws(() => schedule.timer({ name: 'a/b', cron: '0 2 * * *', command: 'x' }), /name "a\/b" must be letters/);
  t.throws(() => schedule.timer({ name: 'x', cron: '0 2 * * *', onCalendar: 'daily', command: 'x' } as never), /give exactly one of cron and onCalendar/);
  t.throws(() => schedule.timer({ name: 'x', cron: '0 2 * * *', command: 'a\nb' }), /command must be one non-empty line/);
});

t.test('schedule.timer state absent: stop, disable, remove, reload', async (t) => {
  const op = schedule.timer({ name: 'nightly', state: 'absent', command: 'x' });
  t.equal(op.name, 'schedule.timer nightly absent');
  const installed = { '/etc/systemd/system/nightly.service': info(SERVICE), '/etc/systemd/system/nightly.timer': info(TIMER) };
  t.same(commands(op.plan(facts(op, installed, unit('enabled', 'active')))), [
    'systemctl disable --now nightly.timer',
    'rm -f -- /etc/systemd/system/nightly.timer',
    'rm -f -- /etc/systemd/system/nightly.service',
    'systemctl daemon-reload',
  ]);
  t.equal(op.plan(facts(op, {}, unit('', 'inactive'))), undefined);
});

t.test('schedule.cron writes one cron.d line and shows the next runs in the host time zone', async (t) => {
  const op = schedule.cron({ name: 'nightly-backup', cron: '0 2 * * *', command: 'cd /srv/tackle && date +%F >> /var/log/x' });
  t.equal(op.name, 'schedule.cron nightly-backup');
  const values = Object.fromEntries(Object.keys(op.facts).map((k) => [k, k === 'tz' ? { kind: 'timezone', name: 'Europe/Berlin' } : { kind: 'missing' }]));
  const change = op.plan(values);
  t.equal(
    String(change?.actions[0]?.stdin),
    '# Managed by tackle (schedule.cron nightly-backup)\nSHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n0 2 * * * root cd /srv/tackle && date +\\%F >> /var/log/x\n',
    '% escaped for cron',
  );
  t.match(change?.summary, /^create \/etc\/cron.d\/nightly-backup \(\d+ bytes, mode 0644\); cron 0 2 \* \* \*; next runs: \d{4}-\d\d-\d\dT01:00:00.000Z, .* \(Europe\/Berlin\)$/);
  t.throws(() => schedule.cron({ name: 'a.b', cron: '0 2 * * *', command: 'x' }), /name "a.b" must be letters, digits, '_', '-'$/);
});
