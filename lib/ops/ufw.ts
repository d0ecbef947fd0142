import { isIP } from 'node:net';
import { Command, sh } from '../command/command.ts';
import { Buffer } from 'node:buffer';
import { defineOperation, UNKNOWN, type Action, type Change, type CommonOptions, type Effects, type Operation } from './operation.ts';
import { TackleError } from '../errors.ts';
import { DOCKER_USER_TAG, dockerUserGuard } from '../facts/docker.ts';
import { pathInfo, type PathInfo } from '../facts/files.ts';
import { sshSession, type SshSession } from '../facts/sshd.ts';
import { ruleIdentity, ufwState, type UfwPolicy, type UfwRule, type UfwState } from '../facts/ufw.ts';
import { dockerUser, UFW_AFTER_INIT } from './docker-firewall.ts';
import { freshLogin } from './sshd.ts';
import { refuse } from './refuse.ts';

/** One firewall rule as you want it. */
export interface UfwRuleSpec {
  action: 'allow' | 'deny' | 'limit' | 'reject';
  /** `22`, `'6000:6007'` (a range) or `'80,443'` (a list); ranges and lists need proto tcp or udp. */
  port?: number | string;
  /** Default `any`. */
  proto?: 'tcp' | 'udp' | 'any';
  /** An application profile (`ufw app list`) such as `OpenSSH`, instead of port and proto. */
  service?: string;
  /** Source: `any` (default), an address or a network (`10.0.0.0/8`, `2001:db8::/32`). */
  from?: string;
  /** Destination on this host: `any` (default), an address or a network. */
  to?: string;
  comment?: string;
  /** Default `in`. */
  direction?: 'in' | 'out';
}

export interface UfwRuleOptions extends UfwRuleSpec, Omit<CommonOptions, 'name'> {
  /** `absent` deletes the rule. Default `present`. */
  state?: 'present' | 'absent';
}

export interface UfwRulesOptions extends CommonOptions {
  rules: readonly UfwRuleSpec[];
  /** Delete every added rule not in `rules`, so that exactly this set remains. */
  purge?: boolean;
}

export interface UfwDefaultsOptions extends CommonOptions {
  incoming?: UfwPolicy;
  outgoing?: UfwPolicy;
  routed?: UfwPolicy;
}

export interface UfwEnabledOptions extends CommonOptions {
  /** Default `true`. */
  enabled?: boolean;
  /**
   * The SSH port that must stay reachable. Default: the port tackle is connected through
   * (from `SSH_CONNECTION` on the host), or 22 over a local connection.
   */
  sshPort?: number;
}

/** A desired rule, normalised to compare with ufw's tuples. */
interface Wanted {
  spec: UfwRuleSpec;
  rule: Omit<UfwRule, 'families' | 'comment'>;
  comment: string | undefined;
  family: 'v4' | 'v6' | 'any';
  /** How the step name and summaries show it. */
  text: string;
}

// ---------------------------------------------------------------- addresses

function ipv4ToInt(address: string): number {
  return address.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

/** ufw's own normal form: an IPv4 network's host bits cleared, /32 and /128 dropped, IPv6 compressed. */
function normalizeAddress(value: unknown, where: string, field: 'from' | 'to'): { address: string; family: 'v4' | 'v6' | 'any' } {
  if (value === undefined || value === 'any') return { address: 'any', family: 'any' };
  const m = typeof value === 'string' ? /^([^/]+)(?:\/(\d{1,3}))?$/.exec(value) : null;
  const kind = m?.[1] ? isIP(m[1]) : 0;
  const prefix = m?.[2] === undefined ? undefined : Number(m[2]);
  if (!m?.[1] || kind === 0 || (prefix !== undefined && prefix > (kind === 4 ? 32 : 128))) {
    throw refuse(where, `${field} must be 'any', an IP address or a network such as 10.0.0.0/8, got ${JSON.stringify(value)}`);
  }
  if (kind === 4) {
    const bits = prefix ?? 32;
    const net = bits === 0 ? 0 : (ipv4ToInt(m[1]) >>> (32 - bits)) << (32 - bits);
    const dotted = [24, 16, 8, 0].map((s) => ((net >>> s) & 255).toString()).join('.');
    return { address: bits === 32 ? m[1] : `${dotted}/${bits}`, family: 'v4' };
  }
  // The URL parser prints IPv6 the way ufw does: lower case, longest zero run compressed.
  const compressed = new URL(`http://[${m[1]}]/`).hostname.slice(1, -1);
  return { address: prefix === undefined || prefix === 128 ? compressed : `${compressed}/${prefix}`, family: 'v6' };
}

/** Whether `address` lies in `network` (an address or CIDR as ufw writes it, or `any`). */
function covers(network: string, address: string): boolean {
  if (network === 'any') return true;
  const [base = '', bits] = network.split('/');
  if (isIP(base) === 4 && isIP(address) === 4) {
    const prefix = bits === undefined ? 32 : Number(bits);
    const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
    return ((ipv4ToInt(base) & mask) >>> 0) === ((ipv4ToInt(address) & mask) >>> 0);
  }
  return bits === undefined && base === address;
}

// ---------------------------------------------------------------- rules

const PORTS = /^\d{1,5}(?::\d{1,5})?(?:,\d{1,5}(?::\d{1,5})?)*$/;

function wanted(spec: UfwRuleSpec, where: string): Wanted {
  if (typeof spec !== 'object' || spec === null) throw refuse(where, 'a rule must be an object');
  if (!['allow', 'deny', 'limit', 'reject'].includes(spec.action)) throw refuse(where, `action must be allow, deny, limit or reject, got ${JSON.stringify(spec.action)}`);
  const direction = spec.direction ?? 'in';
  if (direction !== 'in' && direction !== 'out') throw refuse(where, 'direction must be in or out');
  const proto = spec.proto ?? 'any';
  if (!['tcp', 'udp', 'any'].includes(proto)) throw refuse(where, 'proto must be tcp, udp or any');
  if (spec.service !== undefined && (spec.port !== undefined || spec.proto !== undefined)) throw refuse(where, 'give service, or port and proto, not both');
  if (spec.service !== undefined && (typeof spec.service !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9 ._+-]*$/.test(spec.service))) {
    throw refuse(where, `service must be an application profile name such as "OpenSSH", got ${JSON.stringify(spec.service)}`);
  }
  let dport = 'any';
  if (spec.port !== undefined) {
    const text = String(spec.port);
    const numbers = text.split(/[,:]/).map(Number);
    if (!PORTS.test(text) || numbers.some((n) => n < 1 || n > 65535)) throw refuse(where, `port must be 1-65535, a range '6000:6007' or a list '80,443', got ${JSON.stringify(spec.port)}`);
    if (/[,:]/.test(text) && proto === 'any') throw refuse(where, `a port range or list needs proto 'tcp' or 'udp' (ufw refuses it otherwise)`);
    dport = text;
  }
  const from = normalizeAddress(spec.from, where, 'from');
  const to = normalizeAddress(spec.to, where, 'to');
  if (from.family !== 'any' && to.family !== 'any' && from.family !== to.family) throw refuse(where, 'from and to mix IPv4 and IPv6');
  if (spec.comment !== undefined && (typeof spec.comment !== 'string' || /[\n\r\0]/.test(spec.comment) || spec.comment.length > 200)) {
    throw refuse(where, 'comment must be one line of at most 200 characters');
  }
  const app = spec.service ?? '';
  const rule = {
    action: spec.action,
    log: '' as const,
    route: false,
    direction,
    interfaceIn: '',
    interfaceOut: '',
    proto: app ? '' : proto,
    dport: app ? '' : dport,
    dst: to.address,
    sport: 'any',
    src: from.address,
    dapp: app,
    sapp: '',
  };
  return { spec, rule, comment: spec.comment, family: from.family !== 'any' ? from.family : to.family, text: describeRule(rule) };
}

function expectedFamilies(w: Wanted, ipv6: boolean): ('v4' | 'v6')[] {
  if (w.family !== 'any') return [w.family];
  return ipv6 ? ['v4', 'v6'] : ['v4'];
}

/** The rule ufw has for this wanted one, when it has it completely (every family) with the wanted comment. */
function isPresent(w: Wanted, state: Extract<UfwState, { kind: 'ufw' }>): boolean {
  const id = ruleIdentity(w.rule);
  const have = state.rules.find((r) => ruleIdentity(r) === id);
  if (!have) return false;
  const families = expectedFamilies(w, state.ipv6);
  return families.every((f) => have.families.includes(f)) && (w.comment === undefined || w.comment === have.comment);
}

/** `ufw [route] [delete] ACTION [in|out [on IF]] [out on IF] [log] [proto P] from A [port|app] to B [port|app] [comment C]`. */
function ruleCommand(r: Omit<UfwRule, 'families' | 'comment'>, verb: 'add' | 'delete', comment?: string): Command {
  const words: string[] = [];
  if (r.route) words.push('route');
  if (verb === 'delete') words.push('delete');
  words.push(r.action, r.direction);
  if (r.direction === 'in' && r.interfaceIn) words.push('on', r.interfaceIn);
  if (r.direction === 'out' && r.interfaceOut) words.push('on', r.interfaceOut);
  if (r.route && r.direction === 'in' && r.interfaceOut) words.push('out', 'on', r.interfaceOut);
  if (r.log) words.push(r.log);
  if (!r.dapp && !r.sapp && r.proto && r.proto !== 'any') words.push('proto', r.proto);
  words.push('from', r.src);
  if (r.sapp) words.push('app', r.sapp);
  else if (r.sport !== 'any') words.push('port', r.sport);
  words.push('to', r.dst);
  if (r.dapp) words.push('app', r.dapp);
  else if (r.dport && r.dport !== 'any') words.push('port', r.dport);
  if (comment !== undefined && verb === 'add') words.push('comment', comment);
  return sh`ufw ${words}`;
}

/** A rule as step names and summaries show it: `limit 22/tcp`, `allow OpenSSH from 10.0.0.0/8`. */
function describeRule(r: Omit<UfwRule, 'families' | 'comment'>): string {
  const proto = r.proto === 'any' || r.proto === '' ? '' : r.proto;
  const what = r.dapp || (r.dport === 'any' ? (proto ? `any ${proto} port` : 'any port') : `${r.dport}${proto ? `/${proto}` : ''}`);
  return [r.route ? 'route' : '', r.action, r.direction === 'out' ? 'out' : '', what, r.src !== 'any' ? `from ${r.src}` : '', r.dst !== 'any' ? `to ${r.dst}` : '']
    .filter(Boolean)
    .join(' ');
}

// ---------------------------------------------------------------- SSH safety

interface SshTarget {
  port: number;
  /** The controller's address as the host sees it, when known. */
  client: string | undefined;
}

function sshTarget(session: SshSession, sshPort: number | undefined): SshTarget {
  if (sshPort !== undefined) return { port: sshPort, client: session.kind === 'ssh' ? session.clientAddress : undefined };
  return session.kind === 'ssh' ? { port: session.serverPort, client: session.clientAddress } : { port: 22, client: undefined };
}

function portMatches(dport: string, port: number): boolean {
  if (dport === 'any') return true;
  return dport.split(',').some((part) => {
    const [a = '', b] = part.split(':');
    return b === undefined ? Number(a) === port : Number(a) <= port && port <= Number(b);
  });
}

// Debian's profiles for these two are 22/tcp; other profiles' ports are unknown until ufw reads them.
const SSH_PROFILES = new Set(['OpenSSH', 'SSH']);

/** Whether a rule lets a new SSH connection from the controller in. */
function letsSshIn(r: Omit<UfwRule, 'comment'>, t: SshTarget): boolean {
  if (r.route || r.direction !== 'in' || r.interfaceIn || !(r.action === 'allow' || r.action === 'limit')) return false;
  if (r.sapp || r.sport !== 'any' || r.dst !== 'any') return false;
  const family = t.client && isIP(t.client) === 6 ? 'v6' : 'v4';
  if (!r.families.includes(family)) return false;
  if (!(t.client ? covers(r.src, t.client) : r.src === 'any')) return false;
  if (r.dapp && !r.dport) return SSH_PROFILES.has(r.dapp) && t.port === 22;
  return (r.proto === 'tcp' || r.proto === 'any') && portMatches(r.dport, t.port);
}

function sshAllowed(rules: readonly Omit<UfwRule, 'comment'>[], t: SshTarget): boolean {
  return rules.some((r) => letsSshIn(r, t));
}

function sshRefusal(op: string, what: string, t: SshTarget): TackleError {
  const from = t.client ? `from anywhere or from ${t.client} (the address tackle connects from)` : 'from anywhere';
  return refuse(
    op,
    `refusing to ${what}: no rule would allow SSH port ${t.port}/tcp ${from}, so the firewall would cut this host off. Add ufw.rule({ action: 'limit', port: ${t.port}, proto: 'tcp' }) first (or pass sshPort if SSH listens elsewhere)`,
  );
}

// The same test as letsSshIn, in awk over ufw's files, for when planning could not read them
// (ufw not installed yet in a dry run): allow/limit, tcp or any, the port, from anywhere or the client.
function sshGuard(t: SshTarget): Command {
  const awk = `$1=="###" && $2=="tuple" && ($4 ~ /^(allow|limit)(_log(-all)?)?$/) && ($5=="tcp" || $5=="any") && $8=="any" && ($9=="0.0.0.0/0" || $9=="::/0" || $9==client) && ($7=="0.0.0.0/0" || $7=="::/0") {
  d = ($NF ~ /^comment=/) ? $(NF-1) : $NF; if (d != "in") next
  n = split($6, parts, ","); for (i = 1; i <= n; i++) { split(parts[i], r, ":"); if ($6 == "any" || (r[2] == "" && r[1] == port) || (r[2] != "" && r[1] <= port && port <= r[2])) found = 1 }
} END { exit found ? 0 : 1 }`;
  return sh`awk -v port=${String(t.port)} -v client=${t.client ?? ''} ${awk} /etc/ufw/user.rules /etc/ufw/user6.rules || { echo ${`tackle: refusing to enable ufw: no rule allows SSH port ${t.port}/tcp from anywhere${t.client ? ` or from ${t.client}` : ''}`} >&2; exit 1; }`;
}

// ---------------------------------------------------------------- operations

// Planned as a whole, an earlier step installing ufw shows here as installed.
const notInstalled = 'ufw is not installed: this fails';

type Installed = Extract<UfwState, { kind: 'ufw' }>;

// What ufw's commands write: its rule files and its settings (never the before/after hooks).
const UFW_WRITES = ['/etc/ufw/user.rules', '/etc/ufw/user6.rules', '/etc/default/ufw', '/etc/ufw/ufw.conf'];

/** A change to ufw's state: what the steps after it see of ufw (its files are written). */
function ufwEffects(after: Installed | undefined, more: Effects['facts'] = {}): Effects {
  return { facts: { [ufwState.key]: after ?? UNKNOWN, ...more }, writes: UFW_WRITES };
}

/**
 * Ensures one ufw rule is added (or, with `state: 'absent'`, deleted), read from ufw's own
 * rule files, so it works whether or not the firewall is enabled. A rule for any address is
 * complete only with its IPv6 copy (when ufw's IPV6=yes). A changed comment updates the rule.
 * While the firewall runs, deleting the rule that lets tackle's SSH session in is refused.
 *
 * @example
 * await host.run(ufw.rule({ action: 'limit', port: 22, proto: 'tcp', comment: 'ssh' }));
 * await host.run(ufw.rule({ action: 'allow', service: 'WWW Full' }));
 */
function rule(options: UfwRuleOptions): Operation {
  const w = wanted(options, 'ufw.rule');
  const absent = options.state === 'absent';
  if (options.state !== undefined && !['present', 'absent'].includes(options.state)) throw refuse('ufw.rule', "state must be 'present' or 'absent'");
  return defineOperation({
    name: `ufw.rule ${w.text}${absent ? ' (absent)' : ''}`,
    facts: { ufw: ufwState, session: sshSession },
    options: { notify: options.notify },
    plan: ({ ufw, session }) => planRules('ufw.rule', ufw, session, absent ? [] : [w], absent ? [w] : [], false),
  });
}

/**
 * Ensures a set of ufw rules; with `purge`, exactly this set (other added rules are deleted,
 * after the missing ones are added, so SSH is never without its rule). Rule order is not managed:
 * missing rules are appended.
 *
 * @example
 * await host.run(ufw.rules({ purge: true, rules: [{ action: 'limit', port: 22, proto: 'tcp' }, { action: 'allow', port: 443, proto: 'tcp' }] }));
 */
function rules(options: UfwRulesOptions): Operation {
  if (!Array.isArray(options.rules)) throw refuse('ufw.rules', 'rules must be a list');
  const list = options.rules.map((r, i) => wanted(r, `ufw.rules: rules[${i}]`));
  return defineOperation({
    name: `ufw.rules${options.purge ? ' (exactly)' : ''}`,
    facts: { ufw: ufwState, session: sshSession },
    options,
    plan: ({ ufw, session }) => planRules('ufw.rules', ufw, session, list, [], options.purge === true),
  });
}

function planRules(op: string, state: UfwState, session: SshSession, add: readonly Wanted[], remove: readonly Wanted[], purge: boolean): Change | undefined {
  if (state.kind === 'missing') {
    if (add.length === 0) return undefined;
    return { summary: `add ${add.map((w) => w.text).join(', ')} (${notInstalled})`, actions: add.map((w) => ({ command: ruleCommand(w.rule, 'add', w.comment) })), effects: ufwEffects(undefined) };
  }
  const adding = add.filter((w) => !isPresent(w, state));
  const removeIds = new Set(remove.map((w) => ruleIdentity(w.rule)));
  const keepIds = new Set(add.map((w) => ruleIdentity(w.rule)));
  const deleting = state.rules.filter((r) => removeIds.has(ruleIdentity(r)) || (purge && !keepIds.has(ruleIdentity(r))));
  if (adding.length === 0 && deleting.length === 0) return undefined;
  if (state.active) {
    const t = sshTarget(session, undefined);
    const after = [
      ...state.rules.filter((r) => !deleting.includes(r)),
      ...adding.map((w) => ({ ...w.rule, families: expectedFamilies(w, state.ipv6) })),
    ];
    if (sshAllowed(state.rules, t) && !sshAllowed(after, t)) throw sshRefusal(op, `delete ${deleting.map(describeRule).join(', ')} while ufw is active`, t);
  }
  const actions: Action[] = [
    ...adding.map((w) => ({ command: ruleCommand(w.rule, 'add', w.comment) })),
    ...deleting.map((r) => ({ command: ruleCommand(r, 'delete') })),
  ];
  const said = [...(adding.length ? [`add ${adding.map((w) => w.text).join(', ')}`] : []), ...(deleting.length ? [`delete ${deleting.map(describeRule).join(', ')}`] : [])];
  // ufw appends new rules; a rule it had in part (one family, another comment) is rewritten in place.
  const kept = state.rules.filter((r) => !deleting.includes(r) && !adding.some((w) => ruleIdentity(w.rule) === ruleIdentity(r)));
  const rules = [...kept, ...adding.map((w): UfwRule => ({ ...w.rule, comment: w.comment ?? '', families: expectedFamilies(w, state.ipv6) }))];
  return { summary: said.join('; '), actions, effects: ufwEffects({ ...state, rules }) };
}

const DIRECTIONS = { incoming: 'DEFAULT_INPUT_POLICY', outgoing: 'DEFAULT_OUTPUT_POLICY', routed: 'DEFAULT_FORWARD_POLICY' } as const;

/**
 * Ensures ufw's default policies (`ufw default deny incoming` …). While the firewall runs,
 * making incoming deny or reject without a rule for tackle's SSH port is refused.
 *
 * @example
 * await host.run(ufw.defaults({ incoming: 'deny', outgoing: 'allow', routed: 'deny' }));
 */
function defaults(options: UfwDefaultsOptions): Operation {
  const wantedPolicies = (Object.keys(DIRECTIONS) as (keyof typeof DIRECTIONS)[]).filter((d) => options[d] !== undefined);
  if (wantedPolicies.length === 0) throw refuse('ufw.defaults', 'give incoming, outgoing or routed');
  for (const d of wantedPolicies) if (!['allow', 'deny', 'reject'].includes(options[d] as string)) throw refuse('ufw.defaults', `${d} must be allow, deny or reject`);
  return defineOperation({
    name: 'ufw.defaults',
    facts: { ufw: ufwState, session: sshSession },
    options,
    plan: ({ ufw, session }) => {
      const current = ufw.kind === 'ufw' ? ufw.defaults : { incoming: 'unknown', outgoing: 'unknown', routed: 'unknown' };
      const change = wantedPolicies.filter((d) => current[d] !== options[d]);
      if (change.length === 0) return undefined;
      if (ufw.kind === 'ufw' && ufw.active && change.includes('incoming') && options.incoming !== 'allow') {
        const t = sshTarget(session, undefined);
        if (!sshAllowed(ufw.rules, t)) throw sshRefusal('ufw.defaults', `set the incoming policy to ${options.incoming} while ufw is active`, t);
      }
      const said = change.map((d) => `${d} ${current[d]} → ${options[d]}`);
      return {
        summary: `default policy ${said.join(', ')}${ufw.kind === 'missing' ? ` (${notInstalled})` : ''}`,
        actions: change.map((d) => ({ command: sh`ufw default ${options[d] as string} ${d}` })),
        effects: ufwEffects(ufw.kind === 'ufw' ? { ...ufw, defaults: { ...ufw.defaults, ...Object.fromEntries(change.map((d) => [d, options[d]])) } } : undefined),
      };
    },
  });
}

/**
 * Ensures the firewall is enabled (`ufw --force enable`, also at boot) or disabled. Enabling is
 * REFUSED at planning time unless the added rules allow the SSH port in use (tcp, allow or limit,
 * from anywhere or from the controller's address): the error names the port. In a task planned
 * as a whole the rules are those the earlier steps leave. When ufw is not installed (the step
 * then fails) the same test runs on the host just before enabling.
 * After enabling, a fresh SSH login must work, or ufw is disabled again and the step fails.
 *
 * @example
 * await host.run(ufw.rule({ action: 'limit', port: 22, proto: 'tcp' }));
 * await host.run(ufw.enabled({ enabled: true }));
 */
function enabled(options: UfwEnabledOptions = {}): Operation {
  const on = options.enabled ?? true;
  if (typeof on !== 'boolean') throw refuse('ufw.enabled', 'enabled must be true or false');
  if (options.sshPort !== undefined && !(Number.isInteger(options.sshPort) && options.sshPort > 0 && options.sshPort < 65536)) throw refuse('ufw.enabled', 'sshPort must be a port number');
  return defineOperation({
    name: on ? 'ufw.enabled' : 'ufw.enabled false',
    // Enabling runs ufw's after.init hook, which loads ufw.dockerUser's rules when it holds them.
    facts: { ufw: ufwState, session: sshSession, hook: pathInfo(UFW_AFTER_INIT) },
    options,
    plan: ({ ufw, session, hook }) => {
      if (!on) {
        if (ufw.kind !== 'ufw' || !ufw.active) return undefined;
        return { summary: 'disable the firewall', actions: [{ command: sh`ufw disable` }], effects: ufwEffects({ ...ufw, active: false }, { [dockerUserGuard.key]: { loaded: false } }) };
      }
      if (ufw.kind === 'ufw' && ufw.active) return undefined;
      const t = sshTarget(session, options.sshPort);
      // Not installed: the step fails anyway; the host checks the rules first all the same.
      if (ufw.kind === 'ufw' && !sshAllowed(ufw.rules, t)) throw sshRefusal('ufw.enabled', 'enable ufw', t);
      const guard: Action[] = ufw.kind === 'missing' ? [{ command: sshGuard(t) }] : [];
      const effects = ufwEffects(ufw.kind === 'ufw' ? { ...ufw, active: true } : undefined, { [dockerUserGuard.key]: { loaded: holdsGuard(hook) } });
      return {
        summary: `enable the firewall (SSH port ${t.port}/tcp is allowed${ufw.kind === 'missing' ? `; ${notInstalled}` : ''})`,
        actions: [...guard, { command: sh`ufw --force enable` }],
        effects,
        checks: [
          {
            describe: 'a fresh SSH login still works (else ufw is disabled again)',
            async run(ctx) {
              const failure = await freshLogin(ctx);
              if (failure === undefined) return;
              // The open session survives: ufw lets established connections through.
              const r = await ctx.connection.exec(sh`ufw disable`);
              const undone = r.exitCode === 0 ? 'ufw is disabled again' : `disabling ufw failed too: ${r.stderr.trim()}`;
              throw new TackleError({ phase: 'operation', reason: `a fresh SSH login failed after enabling ufw: ${failure}; ${undone}` });
            },
          },
        ],
      };
    },
  });
}

// Whether after.init loads the DOCKER-USER rules of ufw.dockerUser when ufw starts.
function holdsGuard(hook: PathInfo): boolean {
  return hook.kind === 'file' && hook.content !== undefined && Buffer.from(hook.content, 'base64').toString().includes(DOCKER_USER_TAG);
}

/**
 * ufw (Uncomplicated Firewall) operations.
 *
 * @example
 * await host.run(ufw.defaults({ incoming: 'deny', outgoing: 'allow' }));
 * await host.run(ufw.rules({ purge: true, rules: [{ action: 'limit', port: 22, proto: 'tcp' }] }));
 * await host.run(ufw.enabled({ enabled: true }));
 * await host.run(ufw.dockerUser()); // published Docker ports follow the same policy
 */
export const ufw = { rule, rules, defaults, enabled, dockerUser };
