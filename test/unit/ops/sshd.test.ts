import { Buffer } from 'node:buffer';
import t from 'tap';
import type { Command } from '../../../lib/command/command.ts';
import type { Connection, ExecResult } from '../../../lib/connection/connection.ts';
import type { ApplyContext, Change, Operation } from '../../../lib/ops/operation.ts';
import { TackleError } from '../../../lib/errors.ts';
import type { PathInfo } from '../../../lib/facts/files.ts';
import { parseSshdConfig, type SshSession, type SshdConfig } from '../../../lib/facts/sshd.ts';
import type { SystemdUnit } from '../../../lib/facts/systemd.ts';
import { SSHD_DEFAULT_DROPIN, freshLogin, sshd, type SshdConfigOptions } from '../../../lib/ops/sshd.ts';
import { DEBIAN_SSHD_CONFIG, FRESH_SSHD_T, LAB_DROPIN, configOutput } from '../facts/sshd.captured.ts';
import { fileInfo, refusal } from '../../support/plan.ts';

// ------------------------------------------------------------------ facts, from captured output

const MAIN = '/etc/ssh/sshd_config';
const LAB = '/etc/ssh/sshd_config.d/tackle-lab.conf';


/** `sshd -T` of the fresh host with some keywords replaced (a list value replaces all its lines). */
function effective(changes: Record<string, string | string[]> = {}): string {
  const kept = FRESH_SSHD_T.split('\n').filter((l) => !((l.split(' ')[0] ?? '') in changes));
  return [...kept, ...Object.entries(changes).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${k} ${x}`))].join('\n');
}

function config(files: Record<string, string> = {}, effectiveText = FRESH_SSHD_T, rc = 0): SshdConfig {
  return parseSshdConfig(configOutput({ rc, text: effectiveText }, { [MAIN]: DEBIAN_SSHD_CONFIG, [LAB]: LAB_DROPIN, ...files }));
}

const session: SshSession = { kind: 'ssh', clientAddress: '10.200.0.1', clientPort: 50522, serverAddress: '10.200.0.11', serverPort: 22 };
const local: SshSession = { kind: 'none' };
const socketUnit = (activeState: string, loadState = 'loaded'): SystemdUnit => ({
  kind: 'unit',
  id: 'ssh.socket',
  names: ['ssh.socket'],
  loadState,
  activeState,
  subState: activeState === 'active' ? 'listening' : 'dead',
  fragmentPath: loadState === 'loaded' ? '/lib/systemd/system/ssh.socket' : '',
  unitFileState: activeState === 'active' ? 'enabled' : 'disabled',
  canReload: false,
  needDaemonReload: false,
});
// Debian 12: ssh.socket exists but is not used; Ubuntu 22.10+: it is what listens.
const debianSocket = socketUnit('inactive');
const ubuntuSocket = socketUnit('active');

const HARDENED: SshdConfigOptions['settings'] = {
  permitRootLogin: false,
  passwordAuthentication: false,
  kbdInteractiveAuthentication: false,
  maxAuthTries: 3,
  x11Forwarding: false,
  allowUsers: ['admin', 'deploy'],
};
const HARDENED_FILE = [
  '# Managed by tackle (sshd.config); local changes are overwritten.',
  '# sshd keeps the first value it reads for most keywords; drop-ins are read in name order.',
  'PermitRootLogin no',
  'PasswordAuthentication no',
  'KbdInteractiveAuthentication no',
  'MaxAuthTries 3',
  'X11Forwarding no',
  'AllowUsers admin deploy',
  '',
].join('\n');
// What `sshd -T` printed on the lab host after the hardening run (captured).
const HARDENED_T = effective({ maxauthtries: '3', permitrootlogin: 'no', passwordauthentication: 'no', x11forwarding: 'no', allowusers: ['admin', 'deploy'] });

interface Facts {
  info?: PathInfo;
  config?: SshdConfig;
  session?: SshSession;
  socket?: SystemdUnit;
}
const plan = (op: Operation, f: Facts = {}): Change | undefined =>
  op.plan({ info: f.info ?? { kind: 'missing' }, config: f.config ?? config(), session: f.session ?? session, socket: f.socket ?? debianSocket });
const commands = (c: Change | undefined) => (c?.actions ?? []).map((a) => a.command.toString());


// ------------------------------------------------------------------ planning

t.test('a fresh Debian host: write, sshd -t, arm the rollback timer, reload, then two checks', async (t) => {
  const op = sshd.config({ settings: HARDENED });
  t.equal(op.name, `sshd.config ${SSHD_DEFAULT_DROPIN}`);
  t.equal(SSHD_DEFAULT_DROPIN, '/etc/ssh/sshd_config.d/00-tackle.conf', 'sorts before 50-cloud-init.conf');
  const change = plan(op);
  t.equal(change?.actions[1]?.stdin, HARDENED_FILE, 'the drop-in, in a stable order');
  const [save, , validate, arm, reload] = commands(change);
  t.match(save, 'cp -P -p -- /etc/ssh/sshd_config.d/00-tackle.conf /etc/ssh/sshd_config.d/.00-tackle.conf.tackle-prev', 'the old file kept aside');
  t.match(commands(change)[1], /mktemp --suffix=\.conf \/etc\/ssh\/sshd_config\.d\/\.tackle-[0-9a-f]{8}-XXXXXX/, 'the files writer, atomic');
  t.match(validate, /^if ! tackle_out=\$\(.*sshd -t 2>&1 <\/dev\/null\); then .*mv -fT -- \/etc\/ssh\/sshd_config\.d\/\.00-tackle\.conf\.tackle-prev \/etc\/ssh\/sshd_config\.d\/00-tackle\.conf/, 'checked whole, else the old file is back');
  t.match(arm, /systemd-run --quiet --unit=tackle-sshd-rollback --on-active=120 --timer-property=AccuracySec=1s \/bin\/sh -c '/);
  t.match(reload, /systemctl try-reload-or-restart ssh\.service/);
  t.notMatch(reload, /ssh\.socket/, 'Debian 12: sshd listens itself');
  t.same(change?.checks?.map((c) => c.describe), ['sshd -T shows the new values', 'a fresh SSH login with the inventory settings runs a command (else the old config is restored)']);
  t.match(change?.summary, /^create \/etc\/ssh\/sshd_config\.d\/00-tackle\.conf .*check with sshd -t, reload ssh, then prove a fresh login works/);
  t.match(change?.diff, /\+PasswordAuthentication no/);
});

t.test('converged: the file in place and sshd -T agrees', async (t) => {
  const op = sshd.config({ settings: HARDENED });
  const facts = { info: fileInfo(HARDENED_FILE), config: config({ [SSHD_DEFAULT_DROPIN]: HARDENED_FILE }, HARDENED_T) };
  t.equal(plan(op, facts), undefined);
  // The captured sshd -T prints prohibit-password as without-password: still converged.
  const ppOp = sshd.config({ settings: { permitRootLogin: 'prohibit-password' } });
  const ppFile = String(plan(ppOp)?.actions[1]?.stdin);
  t.equal(plan(ppOp, { info: fileInfo(ppFile), config: config({ [SSHD_DEFAULT_DROPIN]: ppFile }) }), undefined);
});

t.test('the file is in place but sshd -T disagrees: refused, naming the values', async (t) => {
  const op = sshd.config({ settings: HARDENED });
  const reason = refusal(() => plan(op, { info: fileInfo(HARDENED_FILE), config: config({ [SSHD_DEFAULT_DROPIN]: HARDENED_FILE }, FRESH_SSHD_T) }));
  t.match(reason, /is in place but sshd -T disagrees: PermitRootLogin is without-password, expected no; PasswordAuthentication is yes, expected no/);
});

t.test('first value wins: a file read earlier shadows ours, and planning says which', async (t) => {
  const cloud = { '/etc/ssh/sshd_config.d/50-cloud-init.conf': 'PasswordAuthentication yes\n' };
  // The name the brief first suggested loses to cloud-init's file.
  const late = sshd.config({ settings: HARDENED, file: '/etc/ssh/sshd_config.d/50-tackle.conf' });
  t.match(refusal(() => plan(late, { config: config(cloud) })), /PasswordAuthentication is set first by \/etc\/ssh\/sshd_config\.d\/50-cloud-init\.conf:1 \(PasswordAuthentication yes\), which sshd reads before \/etc\/ssh\/sshd_config\.d\/50-tackle\.conf/);
  t.ok(plan(sshd.config({ settings: HARDENED }), { config: config(cloud) }), '00-tackle.conf is read first and wins');

  const before = { [MAIN]: `PasswordAuthentication yes\n${DEBIAN_SSHD_CONFIG}` };
  t.match(refusal(() => plan(sshd.config({ settings: HARDENED }), { config: config(before) })), /set first by \/etc\/ssh\/sshd_config:1/);

  // KbdInteractiveAuthentication no comes AFTER the Include in Debian's main file: ours still wins.
  t.ok(plan(sshd.config({ settings: { kbdInteractiveAuthentication: true } })));

  const noInclude = { [MAIN]: DEBIAN_SSHD_CONFIG.replace(/^Include .*$/m, '') };
  t.match(refusal(() => plan(sshd.config({ settings: HARDENED }), { config: config(noInclude) })), /does not include \/etc\/ssh\/sshd_config\.d\/00-tackle\.conf/);

  // A Match block applies to some connections only; it does not shadow the global value.
  t.ok(plan(sshd.config({ settings: HARDENED }), { config: config({ '/etc/ssh/sshd_config.d/01-sftp.conf': 'Match Group sftp\n  PasswordAuthentication yes\n' }) }));
  // Commented lines and dot files (not matched by *.conf) do not count.
  t.ok(plan(sshd.config({ settings: HARDENED }), { config: config({ '/etc/ssh/sshd_config.d/.00-old.conf': 'PasswordAuthentication yes\n', '/etc/ssh/sshd_config.d/01-x.conf': '#PasswordAuthentication yes\n' }) }));
});

t.test('accumulating keywords: any other AllowUsers or Port line adds to ours', async (t) => {
  const other = { '/etc/ssh/sshd_config.d/90-extra.conf': 'AllowUsers root\n' };
  t.match(refusal(() => plan(sshd.config({ settings: HARDENED }), { config: config(other) })), /AllowUsers is also set in \/etc\/ssh\/sshd_config\.d\/90-extra\.conf:1 \(AllowUsers root\), and sshd adds those values to ours/);
  // The lab's own drop-in sets HostKey and UseDNS after ours: UseDNS is first-wins, so ours counts.
  t.ok(plan(sshd.config({ settings: { useDns: true } })));
  t.match(refusal(() => plan(sshd.config({ settings: {}, extra: { HostKey: '/etc/ssh/ssh_host_rsa_key' } }))), /HostKey is also set in \/etc\/ssh\/sshd_config\.d\/tackle-lab\.conf:3/);
});

t.test('ports: never moved off the port tackle is connected through', async (t) => {
  const move = sshd.config({ settings: { port: 2222 } });
  t.match(refusal(() => plan(move)), /refusing to move sshd off port 22, the port tackle is connected through.*port: \[22, 2222\], then point the inventory at 2222 and set port: 2222/);
  const both = plan(sshd.config({ settings: { port: [22, 2222] } }));
  t.match(both?.actions[1]?.stdin, /^Port 22\nPort 2222\n/m, 'one Port line each');
  t.match(commands(both)[4], /try-reload-or-restart ssh\.service/);
  // Second run of the migration: connected on 2222 (the inventory moved), 22 goes away.
  t.ok(plan(sshd.config({ settings: { port: 2222 } }), { session: { ...session, serverPort: 2222 }, config: config({}, effective({ port: ['22', '2222'] })) }));
  // A local connection cannot be cut off by sshd.
  t.ok(plan(move, { session: local }));
});

t.test('Ubuntu 22.10+ (ssh.socket listens): a port change regenerates and restarts the socket', async (t) => {
  const both = plan(sshd.config({ settings: { port: [22, 2222] } }), { socket: ubuntuSocket });
  const reload = commands(both)[4] ?? '';
  t.match(reload, /systemctl daemon-reload && systemctl restart ssh\.socket && systemctl try-restart ssh\.service/);
  t.match(both?.summary, /restart ssh\.socket \(socket-activated, ports change\)/);
  t.match(commands(both)[3], /restart ssh\.socket/, 'the rollback timer restores the socket too');
  // Same ports as sshd -T shows: a plain reload is enough, even when socket-activated.
  const same = plan(sshd.config({ settings: { port: 22, passwordAuthentication: false } }), { socket: ubuntuSocket });
  t.match(commands(same)[4], /try-reload-or-restart ssh\.service/);
  t.notMatch(commands(same)[4], /ssh\.socket/);
});

t.test('sshd not installed yet (dry run before the package step) or its config broken: still planned', async (t) => {
  t.ok(plan(sshd.config({ settings: HARDENED }), { config: { kind: 'missing' } }));
  t.ok(plan(sshd.config({ settings: HARDENED }), { config: config({}, 'line 9: Bad configuration option: Bogus', 255) }));
});

t.test('argument errors are refused, at once', async (t) => {
  t.throws(() => sshd.config({ settings: {} }), /give at least one setting/);
  t.throws(() => sshd.config({ settings: { passwordAuth: false } as never }), /unknown setting "passwordAuth"/);
  t.throws(() => sshd.config({ settings: { passwordAuthentication: 'no' as never } }), /must be true or false/);
  t.throws(() => sshd.config({ settings: { maxAuthTries: 0 } }), /from 1/);
  t.throws(() => sshd.config({ settings: { port: 70000 } }), /from 1 to 65535/);
  t.throws(() => sshd.config({ settings: { allowUsers: [] } }), /non-empty list/);
  t.throws(() => sshd.config({ settings: { allowUsers: ['a b'] } }), /not a user or group pattern/);
  t.throws(() => sshd.config({ settings: { ciphers: ['+aes128-ctr'] } }), /prefixes/);
  t.throws(() => sshd.config({ settings: { banner: 'motd' } }), /absolute path/);
  t.throws(() => sshd.config({ settings: { x11Forwarding: false }, file: '/etc/ssh/sshd_config' }), /NAME\.conf in \/etc\/ssh\/sshd_config\.d\//);
  t.throws(() => sshd.config({ settings: { x11Forwarding: false }, file: '/etc/ssh/sshd_config.d/tackle' }), /NAME\.conf/);
  t.throws(() => sshd.config({ settings: {}, extra: { Match: 'User x' } }), /Match and Include/);
  t.throws(() => sshd.config({ settings: {}, extra: { passwordauthentication: 'no' } }), /use settings\.passwordAuthentication/);
  t.throws(() => sshd.config({ settings: {}, extra: { Banner2: 'a\nb' } }), /one-line string/);
  const extra = plan(sshd.config({ settings: { x11Forwarding: false }, extra: { MaxStartups: '10:30:60', AcceptEnv: ['LANG', 'LC_*'], UseBlacklist: true } }), { config: config({ [MAIN]: DEBIAN_SSHD_CONFIG.replace(/^AcceptEnv.*$/m, '') }) });
  t.match(extra?.actions[1]?.stdin, /X11Forwarding no\nMaxStartups 10:30:60\nAcceptEnv LANG LC_\*\nUseBlacklist yes\n$/);
});

// ------------------------------------------------------------------ checks, with a scripted connection

interface Scripted {
  ctx: ApplyContext;
  ran: string[];
  opened: number;
}

/** A context whose connection answers `sshd -T` with `t`, and whose fresh logins follow `logins`. */
function scripted(sshdT: string, logins: (Error | 'ok')[]): Scripted {
  const ran: string[] = [];
  const s: Scripted = { ran, opened: 0, ctx: undefined as never };
  const result = (command: Command, stdout = '', exitCode = 0): ExecResult => ({ command, exitCode, signal: null, stdout, stderr: '', durationMs: 1 });
  const conn = (name: string): Connection => ({
    host: name,
    spawn: () => Promise.reject(new Error('the sshd checks only exec')),
    exec: async (command) => {
      ran.push(`${name}: ${command.toString()}`);
      return result(command, command.toString() === 'sshd -T' ? sshdT : '');
    },
    put: async () => {},
    get: async () => Buffer.alloc(0),
    close: async () => {},
    stats: () => ({ channels: 0, roundTrips: 0, commands: 0 }),
    countCommands: () => {},
  });
  s.ctx = {
    host: 'web1',
    connection: conn('open'),
    openFresh: async () => {
      const next = logins[s.opened++] ?? 'ok';
      if (next !== 'ok') throw next;
      return conn('fresh');
    },
  };
  return s;
}
const authFailed = new TackleError({ phase: 'connect', host: 'web1', reason: 'authentication as deploy failed at 10.200.0.11:22 (tried key k); the server did not accept the key' });
const refused = new TackleError({ phase: 'connect', host: 'web1', reason: 'connection refused by 10.200.0.11:22; is sshd running on that port?' });

t.test('checks: success cancels the rollback timer and forgets the old file', async (t) => {
  const change = plan(sshd.config({ settings: HARDENED }));
  const s = scripted(HARDENED_T, ['ok']);
  for (const check of change?.checks ?? []) await check.run(s.ctx);
  t.same(s.ran[0], 'open: sshd -T');
  t.same(s.ran[1], 'fresh: true', 'a fresh connection ran a command');
  t.match(s.ran[2], /^open: \{ systemctl stop tackle-sshd-rollback\.timer tackle-sshd-rollback\.service; .*rm -f -- \/etc\/ssh\/sshd_config\.d\/\.00-tackle\.conf\.tackle-prev$/);
});

t.test('checks: a fresh login that fails rolls back through the open connection and fails the step', async (t) => {
  const change = plan(sshd.config({ settings: { allowUsers: ['nobody'] } }));
  const s = scripted(effective({ allowusers: 'nobody' }), [authFailed, 'ok']);
  const login = change?.checks?.[1];
  const err = await login?.run(s.ctx).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof TackleError);
  t.match((err as TackleError).reason, /^a fresh SSH login failed after writing \/etc\/ssh\/sshd_config\.d\/00-tackle\.conf: authentication as deploy failed.*; the previous config is restored and ssh reloaded; a fresh login works again$/);
  t.match(s.ran[0], /^open: if \{ \[ -e \/etc\/ssh\/sshd_config\.d\/\.00-tackle\.conf\.tackle-prev \] .*; then mv -fT -- .*; else rm -f -- .*; fi; systemctl try-reload-or-restart ssh\.service; \{ systemctl stop tackle-sshd-rollback\.timer/);
  t.equal(s.opened, 2, 'no retry after an authentication failure (it would feed fail2ban); one more login after the rollback');
});

t.test('checks: sshd -T not showing our values rolls back too', async (t) => {
  const change = plan(sshd.config({ settings: HARDENED }));
  const s = scripted(FRESH_SSHD_T, []);
  await t.rejects(change?.checks?.[0]?.run(s.ctx) ?? Promise.resolve(), /did not take effect: PermitRootLogin is without-password, expected no.*; the previous config is restored/);
  t.match(s.ran[1], /^open: if \{ \[ -e /, 'rolled back');
});

t.test('freshLogin retries a refused connection (sshd re-executing on reload), nothing else', async (t) => {
  const s = scripted('', [refused, refused, 'ok']);
  t.equal(await freshLogin(s.ctx), undefined);
  t.equal(s.opened, 3);
  const gone = scripted('', [refused, refused, refused, refused, refused, refused, refused, refused]);
  t.match(await freshLogin(gone.ctx, 300), /connection refused/);
});

