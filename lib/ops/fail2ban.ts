import { sh } from '../command/command.ts';
import { combine, defineOperation, type ApplyContext, type Change, type CommonOptions, type Operation, type PlanPart } from './operation.ts';
import { TackleError, tail } from '../errors.ts';
import { aptLists, aptRelease, dpkgPackages } from '../facts/apt.ts';
import { fail2banHost, type Fail2banHost } from '../facts/fail2ban.ts';
import { pathInfo } from '../facts/files.ts';
import { apt } from './apt.ts';
import { files } from './files.ts';
import { refuse } from './refuse.ts';
import { replaceChecked } from './replace-checked.ts';

/** A fail2ban time: seconds, or a number with a unit fail2ban reads (`10m`, `1h`, `1d`, `1w`); -1 bans for ever. */
export type Fail2banTime = number | string;

/** Options shared by a jail and the defaults. */
export interface Fail2banCommon {
  bantime?: Fail2banTime;
  findtime?: Fail2banTime;
  maxretry?: number;
  /** Addresses, CIDR ranges or host names never banned (put your own address here). */
  ignoreip?: readonly string[];
  /** How fail2ban reads logs; `systemd` reads the journal and needs python3-systemd. */
  backend?: 'auto' | 'systemd' | 'polling' | 'pyinotify';
}

export interface JailOptions extends Fail2banCommon, Omit<CommonOptions, 'name'> {
  /** The jail (section) name, e.g. `sshd`; also the file name `/etc/fail2ban/jail.d/NAME.local`. */
  name: string;
  /** Default `true`. */
  enabled?: boolean;
  /** Port names or numbers the ban covers (`ssh`, `2222`, `[22, 2222]`). */
  port?: number | string | readonly (number | string)[];
}

export type DefaultsOptions = Fail2banCommon & CommonOptions;

const JAIL_DIR = '/etc/fail2ban/jail.d';
/** Where {@link fail2ban.defaults} writes; named to be read before the jails' own `.local` files. */
export const FAIL2BAN_DEFAULTS_FILE = `${JAIL_DIR}/00-tackle-defaults.local`;

const TIME = /^(?:-1|\d+(?:s|m|h|d|w|mo|y)?)$/;
const BACKENDS = ['auto', 'systemd', 'polling', 'pyinotify'];

/** `key = value` lines of the options both a jail and the defaults take, validated. */
function commonLines(o: Fail2banCommon, where: string): string[] {
  const lines: string[] = [];
  if (o.backend !== undefined) {
    if (!BACKENDS.includes(o.backend)) throw refuse(where, `backend must be one of ${BACKENDS.join(', ')}`);
    lines.push(`backend = ${o.backend}`);
  }
  for (const key of ['bantime', 'findtime'] as const) {
    const v = o[key];
    if (v === undefined) continue;
    if (!(typeof v === 'number' ? Number.isInteger(v) && v >= -1 : typeof v === 'string' && TIME.test(v))) throw refuse(where, `${key} must be seconds or a time such as '10m', '1h', '1d' (got ${JSON.stringify(v)})`);
    lines.push(`${key} = ${v}`);
  }
  if (o.maxretry !== undefined) {
    if (!Number.isInteger(o.maxretry) || o.maxretry < 1) throw refuse(where, 'maxretry must be a whole number of 1 or more');
    lines.push(`maxretry = ${o.maxretry}`);
  }
  if (o.ignoreip !== undefined) {
    for (const ip of o.ignoreip as unknown[]) if (typeof ip !== 'string' || !/^[A-Za-z0-9.:/_-]+$/.test(ip)) throw refuse(where, `ignoreip entry ${JSON.stringify(ip)} is not an address, range or host name`);
    lines.push(`ignoreip = ${[...new Set(o.ignoreip)].join(' ')}`);
  }
  return lines;
}

function portLine(port: JailOptions['port'], where: string): string[] {
  if (port === undefined) return [];
  const list = Array.isArray(port) ? port : [port];
  for (const p of list as unknown[]) {
    const ok = typeof p === 'number' ? Number.isInteger(p) && p > 0 && p < 65536 : typeof p === 'string' && /^[a-z0-9-]+(?::[0-9]+)?$/i.test(p);
    if (!ok) throw refuse(where, `port ${JSON.stringify(p)} is not a port number or service name`);
  }
  if (list.length === 0) throw refuse(where, 'port must name at least one port');
  return [`port = ${list.join(',')}`];
}

/**
 * What the sshd jail names explicitly instead of trusting the distribution's filter defaults.
 * OpenSSH 9.8+ logs authentication failures from its `sshd-session` process: fail2ban 1.0's
 * filter (Debian 12, Ubuntu 24.04) only reads lines from `sshd`, and its journal match
 * (`_SYSTEMD_UNIT=sshd.service + _COMM=sshd`) names a unit Debian and Ubuntu call ssh.service.
 */
// `mode=%(mode)s` is jail.conf's own filter parameter, kept so that a `mode` set elsewhere still applies.
const SSHD_FILTER = 'filter = sshd[mode=%(mode)s, _daemon="sshd(?:-session)?"]';
/** Either process name, and either unit name: `+` is an OR between journal matches. */
const SSHD_JOURNALMATCH = 'journalmatch = _SYSTEMD_UNIT=ssh.service + _SYSTEMD_UNIT=sshd.service + _COMM=sshd + _COMM=sshd-session';

/** The package the journal backend needs, installed by apt.packages' own planner. */
const JOURNAL_MODULE = apt.packages({ names: ['python3-systemd'] });

/**
 * A fail2ban file written in place and the WHOLE configuration checked with `fail2ban-client -t`
 * (a jail file means nothing alone); on failure the previous file is back and the step fails.
 */
function checkedWrite(path: string, write: Change): Change {
  return replaceChecked({ ...write, summary: `${write.summary}, checked with fail2ban-client -t` }, [path], sh`fail2ban-client -t`);
}

/**
 * Ensures a fail2ban jail in `/etc/fail2ban/jail.d/NAME.local` (read after jail.conf and
 * Debian's `defaults-debian.conf`, so its values win). For the `sshd` jail on a host whose sshd
 * logs only to the journal (Debian 12: no rsyslog, no /var/log/auth.log), `backend = systemd` is
 * chosen unless `backend` is given, and python3-systemd installed: without both fail2ban does not
 * start ("Have not found any log file for sshd jail"). The whole configuration is checked with
 * `fail2ban-client -t` with the new file in place; on failure the old file is put back.
 * The sshd jail reads lines from both `sshd` and OpenSSH 9.8+'s `sshd-session`, and with the
 * journal backend matches both process names and both unit names (ssh.service, sshd.service)
 * itself rather than relying on the distribution's defaults.
 * Notify a handler running {@link fail2ban.reload} to load the jail.
 *
 * @example
 * await host.run(fail2ban.jail({ name: 'sshd', maxretry: 5, bantime: '1h', ignoreip: ['127.0.0.1/8', '10.0.0.0/8'], notify: 'reload fail2ban' }));
 */
function jail(options: JailOptions): Operation {
  const { name } = options;
  if (typeof name !== 'string' || !/^[A-Za-z0-9_-]+$/.test(name) || name.toUpperCase() === 'DEFAULT' || name === 'INCLUDES') {
    throw refuse('fail2ban.jail', `name ${JSON.stringify(name)} must be a jail name of letters, digits, _ and - (not DEFAULT)`);
  }
  const where = `fail2ban.jail ${name}`;
  if (options.enabled !== undefined && typeof options.enabled !== 'boolean') throw refuse(where, 'enabled must be true or false');
  const fixed = [`enabled = ${options.enabled === false ? 'false' : 'true'}`, ...portLine(options.port, where), ...commonLines(options, where)];
  const path = `${JAIL_DIR}/${name}.local`;
  const sshd = name === 'sshd';
  return defineOperation({
    name: where,
    // The facts its parts read: the jail file (its content depends on the host, so its files.file
    // is built when planning) and apt's, for the journal module.
    facts: { info: pathInfo(path), host: fail2banHost, dpkg: dpkgPackages, lists: aptLists, release: aptRelease },
    options: { notify: options.notify },
    plan: ({ host }, part) => planJail({ name, path, fixed, sshd, backend: options.backend }, host, part),
  });
}

interface JailPlan {
  name: string;
  path: string;
  fixed: string[];
  /** The sshd jail: its backend is chosen from the host and its log sources are named explicitly. */
  sshd: boolean;
  backend: Fail2banCommon['backend'];
}

function planJail(j: JailPlan, host: Fail2banHost, part: PlanPart): Change | undefined {
  // Only the sshd jail's log is known to live in the journal on a journald-only host.
  const journalOnly = j.sshd && j.backend === undefined && !host.authLog;
  const journal = journalOnly || j.backend === 'systemd';
  const sources = j.sshd ? [SSHD_FILTER, ...(journal ? [SSHD_JOURNALMATCH] : [])] : [];
  const body = [...j.fixed, ...(journalOnly ? ['backend = systemd'] : []), ...sources];
  const why = journalOnly ? ['# No /var/log/auth.log: sshd logs to the journal, hence backend = systemd.'] : [];
  const content = [`# Managed by tackle (fail2ban.jail ${j.name}).`, ...why, `[${j.name}]`, ...body, ''].join('\n');
  const write = part(files.file({ path: j.path, content, mode: '0644', owner: 'root', group: 'root' }));
  const module = journal ? part(JOURNAL_MODULE) : undefined;
  return combine([module && { ...module, summary: `${module.summary} (the journal backend needs it)` }, write && checkedWrite(j.path, write)]);
}

/**
 * Ensures fail2ban's `[DEFAULT]` values for every jail in {@link FAIL2BAN_DEFAULTS_FILE}, checked
 * like a jail. A jail's own values (jail.conf's `[sshd]` sets port, logpath and backend) still win.
 *
 * @example
 * await host.run(fail2ban.defaults({ bantime: '1h', findtime: '10m', maxretry: 5, ignoreip: ['127.0.0.1/8', '::1'], notify: 'reload fail2ban' }));
 */
function defaults(options: DefaultsOptions): Operation {
  const lines = commonLines(options, 'fail2ban.defaults');
  if (lines.length === 0) throw refuse('fail2ban.defaults', 'give at least one of bantime, findtime, maxretry, ignoreip, backend');
  const path = FAIL2BAN_DEFAULTS_FILE;
  const content = ['# Managed by tackle (fail2ban.defaults).', '[DEFAULT]', ...lines, ''].join('\n');
  const file = files.file({ path, content, mode: '0644', owner: 'root', group: 'root' });
  return defineOperation({
    name: 'fail2ban.defaults',
    facts: { info: pathInfo(path) },
    options,
    plan: (_, part) => {
      const write = part(file);
      return write && checkedWrite(path, write);
    },
  });
}

/** The firewall command each family of fail2ban's ban actions (action.d/NAME.conf) runs. */
const BAN_TOOLS: readonly (readonly [RegExp, string])[] = [
  [/^iptables/, 'iptables'],
  [/^nftables/, 'nft'],
  [/^ufw/, 'ufw'],
  [/^firewallcmd/, 'firewall-cmd'],
];

/**
 * The firewall commands that fail2ban ban actions run; actions of other kinds need none known here.
 *
 * @example banTools(['iptables-multiport', 'nftables[type=allports]']) // ['iptables', 'nft']
 */
export function banTools(actions: readonly string[]): string[] {
  return [...new Set(actions.flatMap((a) => BAN_TOOLS.filter(([re]) => re.test(a)).map(([, tool]) => tool)))];
}

/**
 * Fails when a jail's ban actions need a firewall command the host lacks. fail2ban starts an action
 * only at its first ban, so such a jail runs, lists banned addresses and blocks none of them
 * (Debian 12's default iptables-multiport on a host without the iptables package).
 */
async function checkBanTools(ctx: ApplyContext, jail: string): Promise<void> {
  const listed = await ctx.connection.exec(sh`fail2ban-client get ${jail} actions`);
  if (listed.exitCode !== 0) throw new TackleError({ phase: 'operation', reason: `fail2ban does not list the actions of jail ${jail}`, exitCode: listed.exitCode, stderrTail: tail(listed.stderr || listed.stdout) });
  // A header line, then one action per line.
  const actions = listed.stdout.split('\n').slice(1).map((l) => l.trim()).filter(Boolean);
  const tools = banTools(actions);
  if (tools.length === 0) return;
  const found = await ctx.connection.exec(sh`PATH=$PATH:/usr/sbin:/sbin; for t in ${tools}; do command -v "$t" >/dev/null || echo "$t"; done`);
  const missing = found.stdout.split('\n').filter(Boolean).join(', ');
  if (!missing) return;
  const reason = `fail2ban's jail ${jail} bans with ${actions.join(', ')}, which needs ${missing}, not installed: banned addresses would not be blocked (install ${missing} or choose a banaction whose tool is installed)`;
  throw new TackleError({ phase: 'operation', reason });
}

export interface ReloadOptions extends CommonOptions {
  /** Jails that must answer `fail2ban-client status JAIL` afterwards. Default `['sshd']`. */
  jails?: readonly string[];
  /** How long to wait for them, in ms. Default 30 000. */
  timeoutMs?: number;
}

/**
 * Reloads fail2ban (restarts it when it is not running, e.g. after it failed to start on a
 * fresh Debian 12 install), then checks that each jail answers `fail2ban-client status JAIL` and
 * that the firewall command its ban actions run is installed (else bans would block nothing).
 * Always acts: meant for a handler notified by fail2ban.jail and fail2ban.defaults.
 *
 * @example
 * handlers: { 'reload fail2ban': async (host) => { await host.run(fail2ban.reload({ jails: ['sshd'] })); } }
 */
function reload(options: ReloadOptions = {}): Operation {
  const jails = options.jails ?? ['sshd'];
  for (const j of jails as unknown[]) if (typeof j !== 'string' || !/^[A-Za-z0-9_-]+$/.test(j)) throw refuse('fail2ban.reload', `${JSON.stringify(j)} is not a jail name`);
  const timeoutMs = options.timeoutMs ?? 30_000;
  return defineOperation({
    name: 'fail2ban.reload',
    facts: {},
    options,
    plan: () => ({
      summary: `reload fail2ban (start it if it is not running)${jails.length ? `, then check jail ${jails.join(', ')}` : ''}`,
      actions: [{ command: sh`systemctl reload-or-restart fail2ban.service` }],
      effects: { touches: (key) => key === 'systemd.unit fail2ban' || key === 'systemd.unit fail2ban.service' },
      checks: jails.map((jail) => ({
        describe: `fail2ban-client status ${jail} answers, and its ban actions' firewall command is installed`,
        async run(ctx) {
          // The server needs a moment to open its socket and load jails after a (re)start.
          const until = Date.now() + timeoutMs;
          for (;;) {
            const r = await ctx.connection.exec(sh`fail2ban-client status ${jail}`);
            if (r.exitCode === 0) return checkBanTools(ctx, jail);
            if (Date.now() > until) {
              const state = (await ctx.connection.exec(sh`systemctl is-active fail2ban.service`)).stdout.trim() || 'unknown';
              const reason = `fail2ban does not answer for jail ${jail} after ${Math.round(timeoutMs / 1000)} s (fail2ban.service is ${state})`;
              throw new TackleError({ phase: 'operation', reason, stderrTail: tail(r.stderr || r.stdout) });
            }
            await new Promise((resolve) => setTimeout(resolve, 500));
          }
        },
      })),
    }),
  });
}

/**
 * fail2ban operations.
 *
 * @example
 * await host.run(fail2ban.jail({ name: 'sshd', maxretry: 5, notify: 'reload fail2ban' }));
 */
export const fail2ban = { jail, defaults, reload };
