import t from 'tap';
import type { Change, Operation } from '../../../lib/engine/operation.ts';
import { parseDpkgQuery, type AptLists, type DpkgPackages } from '../../../lib/facts/apt.ts';
import type { Fail2banHost } from '../../../lib/facts/fail2ban.ts';
import type { PathInfo } from '../../../lib/facts/files.ts';
import { FAIL2BAN_DEFAULTS_FILE, fail2ban } from '../../../lib/ops/fail2ban.ts';
import { fileInfo } from '../../support/plan.ts';

const dpkg = (...installed: string[]): DpkgPackages =>
  parseDpkgQuery({ stdout: `amd64\n${installed.map((n) => `${n}\tall\t1.0\tinstall ok installed\t\n`).join('')}`, stderr: '', exitCode: 0 });
const fresh: AptLists = { kind: 'fetched', ageSeconds: 60, sourcesChanged: false };
const journalOnly: Fail2banHost = { installed: true, authLog: false, journal: true };
const withRsyslog: Fail2banHost = { installed: true, authLog: true, journal: true };

const plan = (op: Operation, f: { info?: PathInfo; host?: Fail2banHost; dpkg?: DpkgPackages; lists?: AptLists } = {}): Change | undefined =>
  op.plan({ info: f.info ?? { kind: 'missing' }, host: f.host ?? journalOnly, dpkg: f.dpkg ?? dpkg('fail2ban', 'python3-systemd'), lists: f.lists ?? fresh });
const commands = (c: Change | undefined) => (c?.actions ?? []).map((a) => a.command.toString());

const SSHD = { name: 'sshd', maxretry: 5, bantime: '1h', ignoreip: ['127.0.0.1/8', '::1', '10.200.0.1'] };
const JOURNAL_JAIL = [
  '# Managed by tackle (fail2ban.jail sshd).',
  '# No /var/log/auth.log: sshd logs to the journal, hence backend = systemd.',
  '[sshd]',
  'enabled = true',
  'bantime = 1h',
  'maxretry = 5',
  'ignoreip = 127.0.0.1/8 ::1 10.200.0.1',
  'backend = systemd',
  '',
].join('\n');

t.test('the sshd jail on a journald-only host (Debian 12): backend systemd, checked in place', async (t) => {
  const op = fail2ban.jail({ ...SSHD, notify: 'reload fail2ban' });
  t.equal(op.name, 'fail2ban.jail sshd');
  t.same(op.notify, ['reload fail2ban']);
  const change = plan(op);
  t.equal(change?.actions[1]?.stdin, JOURNAL_JAIL);
  const [save, write, check] = commands(change);
  t.match(save, /cp -p -- \/etc\/fail2ban\/jail\.d\/sshd\.local \/etc\/fail2ban\/jail\.d\/\.sshd\.local\.tackle-prev/);
  t.match(write, /mktemp --suffix=\.local \/etc\/fail2ban\/jail\.d\/\.tackle-[0-9a-f]{8}-XXXXXX/);
  t.match(check, /^if ! tackle_out=\$\(fail2ban-client -t 2>&1 <\/dev\/null\); then .*mv -f -- \/etc\/fail2ban\/jail\.d\/\.sshd\.local\.tackle-prev \/etc\/fail2ban\/jail\.d\/sshd\.local; else rm -f -- \/etc\/fail2ban\/jail\.d\/sshd\.local; fi; .*exit 1; fi\nrm -f -- /s);
  t.equal(plan(op, { info: fileInfo(JOURNAL_JAIL) }), undefined, 'converged');
});

t.test('python3-systemd is planned when the journal backend needs it (apt.packages planner)', async (t) => {
  const op = fail2ban.jail(SSHD);
  const change = plan(op, { dpkg: dpkg('fail2ban') });
  t.match(commands(change)[0], /apt-get .* install python3-systemd 2>&1\)/);
  t.match(change?.summary, /^install python3-systemd \(the journal backend needs it\); create \/etc\/fail2ban\/jail\.d\/sshd\.local/);
  t.same(commands(plan(op, { info: fileInfo(JOURNAL_JAIL), dpkg: dpkg('fail2ban') })).length, 1, 'only the package when the file is right');
  // A dry run on a fresh host: fail2ban not installed, lists never fetched.
  t.match(plan(op, { host: { installed: false, authLog: false, journal: true }, dpkg: dpkg(), lists: { kind: 'never' } })?.summary, /^apt-get update \(lists never fetched\), install python3-systemd/);
});

t.test('a host with /var/log/auth.log keeps fail2ban’s own backend; an explicit backend wins', async (t) => {
  const change = plan(fail2ban.jail(SSHD), { host: withRsyslog, dpkg: dpkg('fail2ban') });
  t.notMatch(String(change?.actions[1]?.stdin), /backend/);
  t.equal(commands(change).length, 3, 'no package');
  t.match(String(plan(fail2ban.jail({ ...SSHD, backend: 'polling' }))?.actions[1]?.stdin), /\[sshd\]\nenabled = true\nbackend = polling\n/);
  t.match(String(plan(fail2ban.jail({ name: 'nginx-http-auth', port: ['http', 443] }))?.actions[1]?.stdin), /\[nginx-http-auth\]\nenabled = true\nport = http,443\n$/, 'other jails: no journal guess');
  t.match(commands(plan(fail2ban.jail({ name: 'recidive', backend: 'systemd' }), { dpkg: dpkg() }))[0], /install python3-systemd/);
});

t.test('fail2ban.defaults', async (t) => {
  const op = fail2ban.defaults({ bantime: 3600, findtime: '10m', maxretry: 3 });
  t.equal(op.name, 'fail2ban.defaults');
  const change = op.plan({ info: { kind: 'missing' } });
  t.equal(change?.actions[1]?.stdin, '# Managed by tackle (fail2ban.defaults).\n[DEFAULT]\nbantime = 3600\nfindtime = 10m\nmaxretry = 3\n');
  t.match(commands(change)[2], /fail2ban-client -t/);
  t.match(FAIL2BAN_DEFAULTS_FILE, /jail\.d\/00-tackle-defaults\.local$/);
  t.equal(op.plan({ info: fileInfo(String(change?.actions[1]?.stdin)) }), undefined);
});

t.test('fail2ban.reload: always acts, then waits for each jail', async (t) => {
  const change = fail2ban.reload({ jails: ['sshd', 'recidive'] }).plan({});
  t.same(commands(change), ['systemctl reload-or-restart fail2ban.service']);
  t.same(change?.checks?.map((c) => c.describe), ['fail2ban-client status sshd answers', 'fail2ban-client status recidive answers']);
});

t.test('argument errors', async (t) => {
  t.throws(() => fail2ban.jail({ name: 'DEFAULT' }), /not DEFAULT/);
  t.throws(() => fail2ban.jail({ name: 'a/b' }), /jail name/);
  t.throws(() => fail2ban.jail({ name: 'sshd', bantime: '1 hour' }), /bantime must be seconds/);
  t.throws(() => fail2ban.jail({ name: 'sshd', maxretry: 0 }), /maxretry/);
  t.throws(() => fail2ban.jail({ name: 'sshd', ignoreip: ['10.0.0.1 10.0.0.2'] }), /ignoreip entry/);
  t.throws(() => fail2ban.jail({ name: 'sshd', port: 0 }), /port 0/);
  t.throws(() => fail2ban.jail({ name: 'sshd', backend: 'gamin' as never }), /backend must be/);
  t.throws(() => fail2ban.defaults({}), /give at least one/);
  t.throws(() => fail2ban.reload({ jails: ['a b'] }), /not a jail name/);
});
