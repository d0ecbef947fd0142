import t from 'tap';
import type { Connection } from '../../../lib/connection/connection.ts';
import type { ApplyContext, Change, Operation } from '../../../lib/ops/operation.ts';
import { parseDpkgQuery, type AptLists, type DpkgPackages } from '../../../lib/facts/apt.ts';
import type { Fail2banHost } from '../../../lib/facts/fail2ban.ts';
import type { PathInfo } from '../../../lib/facts/files.ts';
import { banTools, FAIL2BAN_DEFAULTS_FILE, fail2ban } from '../../../lib/ops/fail2ban.ts';
import { fileInfo } from '../../support/plan.ts';
import { handlerRef } from '../../support/handler.ts';

const dpkg = (...installed: string[]): DpkgPackages =>
  parseDpkgQuery({ stdout: `amd64\n${installed.map((n) => `${n}\tall\t1.0\tinstall ok installed\t\n`).join('')}`, stderr: '', exitCode: 0 });
const fresh: AptLists = { kind: 'fetched', ageSeconds: 60, sourcesChanged: false };
const journalOnly: Fail2banHost = { installed: true, authLog: false, journal: true };
const withRsyslog: Fail2banHost = { installed: true, authLog: true, journal: true };

const plan = (op: Operation, f: { info?: PathInfo; host?: Fail2banHost; dpkg?: DpkgPackages; lists?: AptLists } = {}): Change | undefined =>
  op.plan({ info: f.info ?? { kind: 'missing' }, host: f.host ?? journalOnly, dpkg: f.dpkg ?? dpkg('fail2ban', 'python3-systemd'), lists: f.lists ?? fresh, release: { release: 'debian bookworm', otherSources: false } });
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
  'filter = sshd[mode=%(mode)s, _daemon="sshd(?:-session)?"]',
  'journalmatch = _SYSTEMD_UNIT=ssh.service + _SYSTEMD_UNIT=sshd.service + _COMM=sshd + _COMM=sshd-session',
  '',
].join('\n');

t.test('the sshd jail on a journald-only host (Debian 12): backend systemd, checked in place', async (t) => {
  const op = fail2ban.jail({ ...SSHD, notify: handlerRef('reload fail2ban') });
  t.equal(op.name, 'fail2ban.jail sshd');
  t.same(op.notify, ['reload fail2ban']);
  const change = plan(op);
  t.equal(change?.actions[1]?.stdin, JOURNAL_JAIL);
  const [save, write, check] = commands(change);
  t.match(save, /cp -P -p -- \/etc\/fail2ban\/jail\.d\/sshd\.local \/etc\/fail2ban\/jail\.d\/\.sshd\.local\.tackle-prev/);
  t.match(write, /mktemp --suffix=\.local \/etc\/fail2ban\/jail\.d\/\.tackle-[0-9a-f]{8}-XXXXXX/);
  t.match(check, /^if ! tackle_out=\$\(.*fail2ban-client -t 2>&1 <\/dev\/null\); then .*mv -fT -- \/etc\/fail2ban\/jail\.d\/\.sshd\.local\.tackle-prev \/etc\/fail2ban\/jail\.d\/sshd\.local; else rm -f -- \/etc\/fail2ban\/jail\.d\/sshd\.local; fi; .*exit 1; fi\nrm -f -- /s);
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

t.test('the sshd jail names its log sources itself: sshd and sshd-session, ssh.service and sshd.service', async (t) => {
  // The journal match is an OR of four terms, each of which alone selects sshd's lines somewhere:
  // `_COMM=sshd-session` is the only one an OpenSSH 9.8+ failure logged outside the unit meets.
  const lines = String(plan(fail2ban.jail(SSHD))?.actions[1]?.stdin).split('\n');
  const match = lines.find((l) => l.startsWith('journalmatch = '));
  t.same(match?.slice('journalmatch = '.length).split(' + '), ['_SYSTEMD_UNIT=ssh.service', '_SYSTEMD_UNIT=sshd.service', '_COMM=sshd', '_COMM=sshd-session']);
  t.ok(lines.includes('filter = sshd[mode=%(mode)s, _daemon="sshd(?:-session)?"]'), 'fail2ban 1.0’s filter reads sshd-session’s lines too, in the jail’s mode');
  t.match(String(plan(fail2ban.jail({ name: 'sshd', backend: 'systemd' }))?.actions[1]?.stdin), /\nbackend = systemd\nfilter = .*\njournalmatch = .*sshd-session\n$/, 'an explicit journal backend too');
});

t.test('a host with /var/log/auth.log keeps fail2ban’s own backend; an explicit backend wins', async (t) => {
  const change = plan(fail2ban.jail(SSHD), { host: withRsyslog, dpkg: dpkg('fail2ban') });
  t.notMatch(String(change?.actions[1]?.stdin), /backend|journalmatch/);
  t.match(String(change?.actions[1]?.stdin), /\nfilter = sshd\[mode=%\(mode\)s, _daemon="sshd\(\?:-session\)\?"\]\n$/, 'auth.log lines of sshd-session are read too');
  t.equal(commands(change).length, 3, 'no package');
  t.match(String(plan(fail2ban.jail({ ...SSHD, backend: 'polling' }))?.actions[1]?.stdin), /\[sshd\]\nenabled = true\nbackend = polling\n[\s\S]*\nfilter = sshd\[.*\]\n$/);
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
  t.same(change?.checks?.map((c) => c.describe), [
    'fail2ban-client status sshd answers, and its ban actions\' firewall command is installed',
    'fail2ban-client status recidive answers, and its ban actions\' firewall command is installed',
  ]);
});

t.test('banTools: the firewall command of each ban action', async (t) => {
  t.same(banTools(['iptables-multiport']), ['iptables']);
  t.same(banTools(['nftables[type=multiport]', 'nftables-allports', 'ufw']), ['nft', 'ufw']);
  t.same(banTools(['sendmail-whois']), [], 'an action of another kind needs none');
});

/** A context whose host answers `fail2ban-client` with `actions` and lacks the commands in `missing`. */
function hostWith(actions: string, missing: string[]): { ctx: ApplyContext; ran: string[] } {
  const ran: string[] = [];
  const connection: Connection = {
    host: 'web1',
    spawn: () => Promise.reject(new Error('the fail2ban checks only exec')),
    exec: async (command) => {
      const text = command.toString();
      ran.push(text);
      const stdout = text.startsWith('fail2ban-client status') ? 'Status for the jail: sshd\n' : text.includes(' actions') ? actions : missing.map((m) => `${m}\n`).join('');
      return { command, exitCode: 0, signal: null, stdout, stderr: '', durationMs: 1 };
    },
    put: async () => {},
    get: async () => Buffer.alloc(0),
    close: async () => {},
    stats: () => ({ channels: 0, roundTrips: 0, commands: 0 }),
    countCommands: () => {},
  };
  return { ctx: { host: 'web1', connection, openFresh: () => Promise.reject(new Error('not used')) }, ran };
}

t.test('fail2ban.reload fails when the ban action’s firewall command is missing (bans would block nothing)', async (t) => {
  const [check] = fail2ban.reload().plan({})?.checks ?? [];
  const actions = 'The jail sshd has the following actions:\niptables-multiport\n';
  const ok = hostWith(actions, []);
  await check?.run(ok.ctx);
  t.same(ok.ran.slice(1), ["fail2ban-client get sshd actions", `PATH=$PATH:/usr/sbin:/sbin; for t in iptables; do command -v "$t" >/dev/null || echo "$t"; done`]);
  await t.rejects(check?.run(hostWith(actions, ['iptables']).ctx) ?? Promise.resolve(), {
    name: 'TackleError',
    phase: 'operation',
    reason: "fail2ban's jail sshd bans with iptables-multiport, which needs iptables, not installed: banned addresses would not be blocked (install iptables or choose a banaction whose tool is installed)",
  });
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
