import { posix } from 'node:path';
import picomatch from 'picomatch';
import { Command, sh } from '../command/command.ts';
import { assertOk, type Connection } from '../connection/connection.ts';
import { defineOperation, type Action, type ApplyContext, type Change, type Check, type CommonOptions, type Operation } from './operation.ts';
import { TackleError } from '../errors.ts';
import { pathInfo } from '../facts/files.ts';
import { SSHD_DROPIN_DIR, SSHD_MAIN_CONFIG, parseSshdT, sshSession, sshdConfig, type SshSession, type SshdConfig, type SshdConfigFile } from '../facts/sshd.ts';
import { systemdUnit, type SystemdUnit } from '../facts/systemd.ts';
import { files } from './files.ts';
import { refuse } from './refuse.ts';
import { previousVersions } from './replace-checked.ts';

/** sshd settings tackle knows how to write and to compare with `sshd -T`. */
export interface SshdSettings {
  /** `true` = yes, `false` = no; `'prohibit-password'` allows root only with a key. */
  permitRootLogin?: boolean | 'yes' | 'no' | 'prohibit-password' | 'forced-commands-only';
  passwordAuthentication?: boolean;
  kbdInteractiveAuthentication?: boolean;
  pubkeyAuthentication?: boolean;
  permitEmptyPasswords?: boolean;
  maxAuthTries?: number;
  maxSessions?: number;
  /** Seconds. */
  loginGraceTime?: number;
  /** Seconds; 0 disables. */
  clientAliveInterval?: number;
  clientAliveCountMax?: number;
  x11Forwarding?: boolean;
  allowTcpForwarding?: boolean | 'yes' | 'no' | 'local' | 'remote';
  allowAgentForwarding?: boolean;
  useDns?: boolean;
  printMotd?: boolean;
  /** Only these users may log in (sshd patterns such as `deploy`, `ops@10.0.0.*`). */
  allowUsers?: readonly string[];
  allowGroups?: readonly string[];
  denyUsers?: readonly string[];
  denyGroups?: readonly string[];
  /**
   * The port(s) sshd listens on. The port tackle is connected through must stay in the list
   * (see {@link sshd}): move in two runs, `[22, 2222]` then, with the inventory on 2222, `2222`.
   */
  port?: number | readonly number[];
  logLevel?: 'QUIET' | 'FATAL' | 'ERROR' | 'INFO' | 'VERBOSE' | 'DEBUG' | 'DEBUG1' | 'DEBUG2' | 'DEBUG3';
  /** A file shown before login, or `'none'`. */
  banner?: string;
  ciphers?: readonly string[];
  macs?: readonly string[];
  kexAlgorithms?: readonly string[];
}

export interface SshdConfigOptions extends CommonOptions {
  settings: SshdSettings;
  /**
   * Other sshd keywords, written as given (`{ MaxStartups: '10:30:60', AcceptEnv: ['LANG'] }`).
   * They are checked by `sshd -t` and for shadowing files, but not compared with `sshd -T`.
   */
  extra?: Readonly<Record<string, string | number | boolean | readonly string[]>>;
  /**
   * The drop-in to write, in /etc/ssh/sshd_config.d/. Default `00-tackle.conf`: sshd keeps the
   * FIRST value it reads for most keywords and reads drop-ins in name order, so a file named
   * `50-tackle.conf` would lose to cloud-init's `50-cloud-init.conf` (`PasswordAuthentication yes`).
   */
  file?: string;
}

/** The drop-in {@link sshd.config} writes unless told otherwise. */
export const SSHD_DEFAULT_DROPIN = `${SSHD_DROPIN_DIR}/00-tackle.conf`;

/** How long a host waits for the controller to confirm a new sshd config before restoring the old one by itself. */
export const SSHD_ROLLBACK_SECONDS = 120;
const ROLLBACK_UNIT = 'tackle-sshd-rollback';

// ---------------------------------------------------------------- settings

type Kind = 'bool' | 'int' | 'permitRootLogin' | 'forwarding' | 'words' | 'ports' | 'logLevel' | 'banner' | 'algorithms';

interface Setting {
  keyword: string;
  kind: Kind;
  /** sshd adds up every line of these (across files) instead of keeping the first. */
  accumulates?: boolean;
  min?: number;
}

// The order here is the order of lines in the file, so the content is stable between runs.
const SETTINGS: { readonly [K in keyof Required<SshdSettings>]: Setting } = {
  port: { keyword: 'Port', kind: 'ports', accumulates: true },
  permitRootLogin: { keyword: 'PermitRootLogin', kind: 'permitRootLogin' },
  passwordAuthentication: { keyword: 'PasswordAuthentication', kind: 'bool' },
  kbdInteractiveAuthentication: { keyword: 'KbdInteractiveAuthentication', kind: 'bool' },
  pubkeyAuthentication: { keyword: 'PubkeyAuthentication', kind: 'bool' },
  permitEmptyPasswords: { keyword: 'PermitEmptyPasswords', kind: 'bool' },
  maxAuthTries: { keyword: 'MaxAuthTries', kind: 'int', min: 1 },
  maxSessions: { keyword: 'MaxSessions', kind: 'int', min: 0 },
  loginGraceTime: { keyword: 'LoginGraceTime', kind: 'int', min: 0 },
  clientAliveInterval: { keyword: 'ClientAliveInterval', kind: 'int', min: 0 },
  clientAliveCountMax: { keyword: 'ClientAliveCountMax', kind: 'int', min: 0 },
  x11Forwarding: { keyword: 'X11Forwarding', kind: 'bool' },
  allowTcpForwarding: { keyword: 'AllowTcpForwarding', kind: 'forwarding' },
  allowAgentForwarding: { keyword: 'AllowAgentForwarding', kind: 'bool' },
  useDns: { keyword: 'UseDNS', kind: 'bool' },
  printMotd: { keyword: 'PrintMotd', kind: 'bool' },
  allowUsers: { keyword: 'AllowUsers', kind: 'words', accumulates: true },
  allowGroups: { keyword: 'AllowGroups', kind: 'words', accumulates: true },
  denyUsers: { keyword: 'DenyUsers', kind: 'words', accumulates: true },
  denyGroups: { keyword: 'DenyGroups', kind: 'words', accumulates: true },
  logLevel: { keyword: 'LogLevel', kind: 'logLevel' },
  banner: { keyword: 'Banner', kind: 'banner' },
  ciphers: { keyword: 'Ciphers', kind: 'algorithms' },
  macs: { keyword: 'MACs', kind: 'algorithms' },
  kexAlgorithms: { keyword: 'KexAlgorithms', kind: 'algorithms' },
};

// Keywords that add up across lines, for `extra` too (sshd_config(5)).
const ACCUMULATING = new Set(['port', 'listenaddress', 'allowusers', 'allowgroups', 'denyusers', 'denygroups', 'acceptenv', 'hostkey', 'hostcertificate', 'setenv', 'subsystem']);
const LOG_LEVELS = ['QUIET', 'FATAL', 'ERROR', 'INFO', 'VERBOSE', 'DEBUG', 'DEBUG1', 'DEBUG2', 'DEBUG3'];

/** One line of the drop-in, and what `sshd -T` should then print for it (undefined: not compared). */
interface Line {
  keyword: string;
  /** The text after the keyword, one entry per line written (Port writes one line per port). */
  written: string[];
  /** Expected `sshd -T` values, lower-case keyword; compared as a set when the keyword accumulates. */
  expected: string[] | undefined;
  accumulates: boolean;
}

function yesNo(value: unknown, where: string): string {
  if (typeof value !== 'boolean') throw refuse('sshd.config', `${where} must be true or false, got ${JSON.stringify(value)}`);
  return value ? 'yes' : 'no';
}

function integer(value: unknown, where: string, min: number, max = 2 ** 31 - 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw refuse('sshd.config', `${where} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return value;
}

function words(value: unknown, where: string, pattern: RegExp, what: string): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0) throw refuse('sshd.config', `${where} must be a non-empty list of ${what}`);
  for (const w of list as unknown[]) if (typeof w !== 'string' || !pattern.test(w)) throw refuse('sshd.config', `${where}: ${JSON.stringify(w)} is not ${what}`);
  return [...new Set(list as string[])];
}

function settingLine(name: keyof SshdSettings, value: unknown): Line {
  const { keyword, kind, accumulates = false, min = 0 } = SETTINGS[name];
  const where = `settings.${name}`;
  const line = (written: string[], expected: string[]): Line => ({ keyword, written, expected, accumulates });
  switch (kind) {
    case 'bool': {
      const v = yesNo(value, where);
      return line([v], [v]);
    }
    case 'int': {
      const v = String(integer(value, where, min));
      return line([v], [v]);
    }
    case 'permitRootLogin': {
      const v = typeof value === 'boolean' ? (value ? 'yes' : 'no') : value;
      if (typeof v !== 'string' || !['yes', 'no', 'prohibit-password', 'forced-commands-only'].includes(v)) {
        throw refuse('sshd.config', `${where} must be true, false, 'prohibit-password' or 'forced-commands-only', got ${JSON.stringify(value)}`);
      }
      // sshd -T prints prohibit-password by its older name.
      return line([v], [v === 'prohibit-password' ? 'without-password' : v]);
    }
    case 'forwarding': {
      const v = typeof value === 'boolean' ? (value ? 'yes' : 'no') : value;
      if (typeof v !== 'string' || !['yes', 'no', 'local', 'remote'].includes(v)) throw refuse('sshd.config', `${where} must be true, false, 'local' or 'remote', got ${JSON.stringify(value)}`);
      return line([v], [v]);
    }
    case 'words': {
      // User and group patterns: anything but whitespace, quotes and comment marks.
      const list = words(value, where, /^[^\s"'#]+$/, 'a user or group pattern');
      return line([list.join(' ')], list);
    }
    case 'ports': {
      const list = (typeof value === 'number' ? [value] : Array.isArray(value) ? value : [undefined]).map((p: unknown) => String(integer(p, where, 1, 65535)));
      if (list.length === 0) throw refuse('sshd.config', `${where} must name at least one port`);
      const unique = [...new Set(list)];
      return line(unique, unique);
    }
    case 'logLevel': {
      if (typeof value !== 'string' || !LOG_LEVELS.includes(value)) throw refuse('sshd.config', `${where} must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}`);
      return line([value], [value === 'DEBUG' ? 'DEBUG1' : value]);
    }
    case 'banner': {
      if (typeof value !== 'string' || !(value === 'none' || /^\/[^\s"'#]*$/.test(value))) throw refuse('sshd.config', `${where} must be an absolute path without spaces, or 'none'`);
      return line([value], [value]);
    }
    case 'algorithms': {
      // No +, - or ^ prefixes: sshd -T would print the expanded list, which cannot be compared.
      const list = words(value, where, /^[A-Za-z0-9][A-Za-z0-9@._-]*$/, 'an algorithm name (prefixes +, -, ^ are not supported)');
      return line([list.join(',')], [list.join(',')]);
    }
  }
}

function extraLine(keyword: string, value: unknown): Line {
  const where = `extra.${keyword}`;
  if (!/^[A-Za-z][A-Za-z0-9]*$/.test(keyword)) throw refuse('sshd.config', `extra keyword ${JSON.stringify(keyword)} is not an sshd keyword`);
  if (/^(match|include)$/i.test(keyword)) throw refuse('sshd.config', `${where}: Match and Include change how the rest of the file is read; they cannot be set here`);
  const lower = keyword.toLowerCase();
  const typed = Object.entries(SETTINGS).find(([, s]) => s.keyword.toLowerCase() === lower);
  if (typed) throw refuse('sshd.config', `${where}: use settings.${typed[0]} for ${keyword}`);
  const token = (v: unknown): string => {
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
    if (typeof v === 'string' && v.trim() !== '' && !/[\n\r\0]/.test(v)) return v.trim();
    throw refuse('sshd.config', `${where} must be a one-line string, a number, a boolean or a list of strings, got ${JSON.stringify(v)}`);
  };
  const written = Array.isArray(value) ? [value.map(token).join(' ')] : [token(value)];
  return { keyword, written, expected: undefined, accumulates: ACCUMULATING.has(lower) };
}

function desiredLines(o: SshdConfigOptions): Line[] {
  if (typeof o.settings !== 'object' || o.settings === null) throw refuse('sshd.config', 'settings must be an object');
  for (const key of Object.keys(o.settings)) if (!(key in SETTINGS)) throw refuse('sshd.config', `unknown setting ${JSON.stringify(key)}; known: ${Object.keys(SETTINGS).join(', ')} (others go in extra)`);
  const lines = (Object.keys(SETTINGS) as (keyof SshdSettings)[]).filter((k) => o.settings[k] !== undefined).map((k) => settingLine(k, o.settings[k]));
  lines.push(...Object.entries(o.extra ?? {}).map(([k, v]) => extraLine(k, v)));
  if (lines.length === 0) throw refuse('sshd.config', 'give at least one setting');
  return lines;
}

function render(lines: readonly Line[]): string {
  const body = lines.flatMap((l) => l.written.map((w) => `${l.keyword} ${w}`));
  return [
    '# Managed by tackle (sshd.config); local changes are overwritten.',
    '# sshd keeps the first value it reads for most keywords; drop-ins are read in name order.',
    ...body,
    '',
  ].join('\n');
}

function checkFile(file: unknown): string {
  const path = file ?? SSHD_DEFAULT_DROPIN;
  if (typeof path !== 'string' || posix.dirname(path) !== SSHD_DROPIN_DIR || !/^[A-Za-z0-9_][A-Za-z0-9_.-]*\.conf$/.test(posix.basename(path))) {
    throw refuse('sshd.config', `file must be a NAME.conf in ${SSHD_DROPIN_DIR}/ (included by ${SSHD_MAIN_CONFIG}), got ${JSON.stringify(file)}`);
  }
  return path;
}

// ---------------------------------------------------------------- include order

interface Occurrence {
  path: string;
  line: number;
  keyword: string;
  value: string;
}

/** sshd's reading order: the main file with each Include expanded in place (sorted glob matches). */
interface ReadOrder {
  occurrences: Occurrence[];
  included: Set<string>;
}

function readOrder(files: readonly SshdConfigFile[]): ReadOrder {
  const byPath = new Map(files.map((f) => [f.path, f.content]));
  const paths = [...byPath.keys()];
  const order: ReadOrder = { occurrences: [], included: new Set() };
  const visit = (path: string, depth: number): void => {
    const content = byPath.get(path);
    if (content === undefined || depth > 16) return;
    order.included.add(path);
    let global = true;
    content.split('\n').forEach((text, i) => {
      const m = /^\s*([A-Za-z][A-Za-z0-9]*)(?:\s*=\s*|\s+)(.*?)\s*$/.exec(text);
      if (!m?.[1] || text.trimStart().startsWith('#')) return;
      const keyword = m[1].toLowerCase();
      const value = m[2] ?? '';
      // A Match block lasts to the end of its file; only global values matter here.
      if (keyword === 'match') global = false;
      if (!global) return;
      if (keyword !== 'include') {
        order.occurrences.push({ path, line: i + 1, keyword, value });
        return;
      }
      for (const pattern of value.split(/\s+/).filter(Boolean)) {
        const absolute = pattern.startsWith('/') ? pattern : posix.join('/etc/ssh', pattern);
        // glob(3): `*` stops at `/` and skips dot files; matches are read in sorted order.
        const isMatch = picomatch(absolute, { dot: false });
        // Files elsewhere are not in the fact: the sshd -T check after the apply still sees them.
        for (const p of paths.filter((f) => isMatch(f)).sort()) visit(p, depth + 1);
      }
    });
  };
  visit(SSHD_MAIN_CONFIG, 0);
  return order;
}

/** Why each line of ours would not take effect: a file sshd reads first (or also) sets the keyword. */
function shadowing(files: readonly SshdConfigFile[], path: string, content: string, lines: readonly Line[]): string[] {
  const candidate = [...files.filter((f) => f.path !== path), { path, content }];
  const order = readOrder(candidate);
  if (!order.included.has(path)) {
    return [`${SSHD_MAIN_CONFIG} does not include ${path} (no "Include ${SSHD_DROPIN_DIR}/*.conf" line); sshd would never read it`];
  }
  const problems: string[] = [];
  for (const l of lines) {
    const keyword = l.keyword.toLowerCase();
    const found = order.occurrences.filter((o) => o.keyword === keyword);
    const others = found.filter((o) => o.path !== path);
    const where = (o: Occurrence) => `${o.path}:${o.line} (${o.keyword === keyword ? l.keyword : o.keyword} ${o.value})`;
    if (l.accumulates && others.length > 0) {
      problems.push(`${l.keyword} is also set in ${others.map(where).join(', ')}, and sshd adds those values to ours`);
    } else if (!l.accumulates && found[0] && found[0].path !== path) {
      problems.push(`${l.keyword} is set first by ${where(found[0])}, which sshd reads before ${path} and keeps`);
    }
  }
  return problems;
}

/** Differences between what `sshd -T` prints and what our lines should make it print. */
function effectiveMismatches(values: Readonly<Record<string, readonly string[]>>, lines: readonly Line[]): string[] {
  const out: string[] = [];
  for (const l of lines) {
    if (!l.expected) continue;
    const key = l.keyword.toLowerCase();
    const have = [...(values[key] ?? [])];
    const same = l.accumulates ? sameSet(have, l.expected) : have[0] === l.expected[0];
    if (!same) out.push(`${l.keyword} is ${have.length ? have.join(' ') : '(unset)'}, expected ${l.expected.join(' ')}`);
  }
  return out;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const x = new Set(a);
  const y = new Set(b);
  return x.size === y.size && [...x].every((v) => y.has(v));
}

// ---------------------------------------------------------------- the operation

interface Plan {
  path: string;
  lines: Line[];
  content: string;
  ports: string[] | undefined;
}

/**
 * Ensures sshd settings through a drop-in in /etc/ssh/sshd_config.d/ (default `00-tackle.conf`,
 * which sorts before cloud-init's `50-cloud-init.conf`: sshd keeps the first value it reads).
 * Planning reads `sshd -T` and every config file, and refuses (naming file and line) when
 * another file would shadow a setting, since writing ours would then change nothing.
 *
 * Applying never locks you out:
 * 1. the old file is kept aside, the new one put in place and the WHOLE configuration checked
 *    with `sshd -t` (a drop-in cannot be checked alone: its meaning depends on what is read
 *    before it, and a rewritten copy of the main file would not be what sshd reads); on failure
 *    the old file is back at once and the step fails with sshd's message;
 * 2. a timer on the host (`systemd-run`, {@link SSHD_ROLLBACK_SECONDS} s) will restore the old file
 *    and reload unless the controller confirms, so even a lost controller cannot lock the host;
 * 3. ssh is reloaded (on a socket-activated host whose port changes, Ubuntu 22.10+:
 *    `daemon-reload` and a restart of ssh.socket, whose ports a generator takes from sshd_config);
 * 4. checks on the controller: `sshd -T` shows the new values, and a FRESH SSH login with the
 *    inventory's settings runs a command. If either fails, the old file is restored and sshd
 *    reloaded through the still-open connection, and the step fails with the reason.
 *
 * Port changes: the fresh login uses the inventory's port, which a port change would make stale.
 * So the port tackle is connected through (from `SSH_CONNECTION` on the host) must stay among
 * `port`; otherwise planning refuses. Move in two runs: `port: [22, 2222]`, then set the
 * inventory to 2222 and run with `port: 2222`. Open the new port in the firewall first.
 *
 * @example
 * await host.run(sshd.config({ settings: { passwordAuthentication: false, permitRootLogin: 'prohibit-password', allowUsers: ['deploy'] } }));
 */
function config(options: SshdConfigOptions): Operation {
  const path = checkFile(options.file);
  const lines = desiredLines(options);
  const content = render(lines);
  const ports = lines.find((l) => l.keyword === 'Port')?.expected;
  const p: Plan = { path, lines, content, ports };
  const write = files.file({ path, content, mode: '0644', owner: 'root', group: 'root' });
  return defineOperation({
    name: `sshd.config ${path}`,
    // `info`: the drop-in as it is, which the files.file part reads.
    facts: { info: pathInfo(path), config: sshdConfig, session: sshSession, socket: systemdUnit('ssh.socket') },
    options,
    plan: ({ config, session, socket }, part) => planConfig(p, () => part(write), config, session, socket),
  });
}

function planConfig(p: Plan, write: () => Change | undefined, config: SshdConfig, session: SshSession, socket: SystemdUnit): Change | undefined {
  if (p.ports && session.kind === 'ssh' && !p.ports.includes(String(session.serverPort))) {
    const now = String(session.serverPort);
    throw refuse(
      'sshd.config',
      `refusing to move sshd off port ${now}, the port tackle is connected through: the check that proves a new login still works uses the inventory's port, and the inventory would be stale. ` +
        `Change it in two runs: port: [${[now, ...p.ports].join(', ')}], then point the inventory at ${p.ports[0]} and set port: ${p.ports.join(', ')}`,
    );
  }
  if (config.kind === 'sshd') {
    const shadowed = shadowing(config.files, p.path, p.content, p.lines);
    if (shadowed.length) throw refuse('sshd.config', `${p.path} would not take effect: ${shadowed.join('; ')}. Remove those lines, or give file: a name that sorts first`);
  }
  const change = write();
  if (!change) {
    // Our file is in place; sshd -T must agree, or something outside our view overrides it.
    if (config.kind === 'sshd' && config.effective.kind === 'valid') {
      const wrong = effectiveMismatches(config.effective.values, p.lines);
      if (wrong.length) throw refuse('sshd.config', `${p.path} is in place but sshd -T disagrees: ${wrong.join('; ')}`);
    }
    return undefined;
  }
  const prev = previousVersions([p.path]);
  const effectivePorts = config.kind === 'sshd' && config.effective.kind === 'valid' ? config.effective.values.port : undefined;
  const portsChange = p.ports !== undefined && !(effectivePorts && sameSet(effectivePorts, p.ports));
  const viaSocket = socket.kind === 'unit' && socket.loadState === 'loaded' && socket.activeState === 'active';
  const reload = reloadCommand(portsChange && viaSocket);
  const rollback = Command.join([prev.restore, reload, disarmCommand()], '; ');
  const actions: Action[] = [
    { command: prev.save },
    ...change.actions,
    // The old file is kept after the check: the rollback timer and the login check still need it.
    { command: prev.checkOrRestore(sh`sshd -t`) },
    // Without its safety net (no systemd-run) the new file must not go live: put the old one back.
    { command: sh`if ! tackle_out=$(${armCommand(rollback)} 2>&1); then ${prev.restore}; printf 'tackle: could not arm the rollback timer, so sshd is not reloaded and the previous config is back:\n%s\n' "$tackle_out" >&2; exit 1; fi` },
    { command: sh`if ! tackle_out=$(${reload} 2>&1); then ${rollback}; printf 'tackle: reloading ssh failed; the previous config is back:\\n%s\\n' "$tackle_out" >&2; exit 1; fi` },
  ];
  const how = portsChange && viaSocket ? 'restart ssh.socket (socket-activated, ports change)' : 'reload ssh';
  return {
    summary: `${change.summary}, check with sshd -t, ${how}, then prove a fresh login works (else roll back)`,
    actions,
    checks: [effectiveCheck(p, rollback), loginCheck(p, rollback, prev.forget)],
    ...(change.diff ? { diff: change.diff } : {}),
    effects: { writes: [p.path], touches: (key) => key.startsWith('systemd.unit ssh') },
  };
}

/** Reload sshd; with ports moving on a socket-activated host, the socket must be regenerated and restarted. */
function reloadCommand(restartSocket: boolean): Command {
  if (restartSocket) return sh`systemctl daemon-reload && systemctl restart ssh.socket && systemctl try-restart ssh.service`;
  return sh`systemctl try-reload-or-restart ssh.service`;
}

function disarmCommand(): Command {
  return sh`{ systemctl stop ${`${ROLLBACK_UNIT}.timer`} ${`${ROLLBACK_UNIT}.service`}; systemctl reset-failed ${`${ROLLBACK_UNIT}.timer`} ${`${ROLLBACK_UNIT}.service`}; } >/dev/null 2>&1 || true`;
}

/** The host's own safety net: restore and reload unless the controller confirms in time. */
function armCommand(rollback: Command): Command {
  return Command.join(
    [disarmCommand(), sh`systemd-run --quiet --unit=${ROLLBACK_UNIT} --on-active=${SSHD_ROLLBACK_SECONDS} --timer-property=AccuracySec=1s /bin/sh -c ${rollback.asArgument()}`],
    '; ',
  );
}

async function rollBack(ctx: ApplyContext, rollback: Command): Promise<string> {
  const r = await ctx.connection.exec(rollback);
  if (r.exitCode !== 0) return `; restoring the previous config failed too (exit ${r.exitCode}): ${r.stderr.trim().slice(-500)}`;
  return '; the previous config is restored and ssh reloaded';
}

function effectiveCheck(p: Plan, rollback: Command): Check {
  return {
    describe: 'sshd -T shows the new values',
    async run(ctx) {
      const r = assertOk(await ctx.connection.exec(sh`sshd -T`), ctx.host, 'sshd -T failed after the change');
      const wrong = effectiveMismatches(parseSshdT(r.stdout), p.lines);
      if (wrong.length === 0) return;
      const restored = await rollBack(ctx, rollback);
      throw new TackleError({ phase: 'operation', reason: `${p.path} did not take effect: ${wrong.join('; ')}${restored}` });
    },
  };
}

function loginCheck(p: Plan, rollback: Command, forget: Command): Check {
  return {
    describe: 'a fresh SSH login with the inventory settings runs a command (else the old config is restored)',
    async run(ctx) {
      const failure = await freshLogin(ctx);
      if (failure === undefined) {
        assertOk(await ctx.connection.exec(Command.join([disarmCommand(), forget], '; ')), ctx.host, 'could not cancel the rollback timer');
        return;
      }
      const restored = await rollBack(ctx, rollback);
      const after = restored.includes('restored') ? await freshLogin(ctx) : 'not tried';
      const verdict = after === undefined ? '; a fresh login works again' : after === 'not tried' ? '' : `; a fresh login still fails: ${after}`;
      throw new TackleError({ phase: 'operation', reason: `a fresh SSH login failed after writing ${p.path}: ${failure}${restored}${verdict}` });
    },
  };
}

/**
 * Opens a new connection and runs `true`; undefined when that works, else why not. sshd closes
 * its listener for a moment while it re-executes on reload, so a refused connection is retried
 * for a few seconds; an authentication failure is not (retrying only feeds fail2ban).
 *
 * @example
 * const failure = await freshLogin(ctx);
 * if (failure !== undefined) throw new TackleError({ phase: 'operation', reason: `login broken: ${failure}` });
 */
export async function freshLogin(ctx: ApplyContext, deadlineMs = 8000): Promise<string | undefined> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    let conn: Connection | undefined;
    try {
      conn = await ctx.openFresh();
      const r = await conn.exec(sh`true`);
      if (r.exitCode === 0) return undefined;
      return `the login worked but "true" exited ${r.exitCode}: ${r.stderr.trim().slice(-300)}`;
    } catch (err) {
      const why = err instanceof TackleError ? err.reason : (err as Error).message;
      if (!/refused|reset/i.test(why) || Date.now() > until) return why;
    } finally {
      await conn?.close().catch(() => {});
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * sshd operations.
 *
 * @example
 * await host.run(sshd.config({ settings: { passwordAuthentication: false, kbdInteractiveAuthentication: false } }));
 */
export const sshd = { config };
