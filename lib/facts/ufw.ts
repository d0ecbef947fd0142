import { Buffer } from 'node:buffer';
import { raw, sh } from '../command/command.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

/** ufw's word for a policy. */
export type UfwPolicy = 'allow' | 'deny' | 'reject';

/**
 * One rule as ufw records it (a `### tuple ###` line of user.rules / user6.rules), with the IPv4
 * and IPv6 copies of a rule for any address merged into one.
 */
export interface UfwRule {
  action: 'allow' | 'deny' | 'reject' | 'limit';
  /** `log` or `log-all` when the rule logs. */
  log: '' | 'log' | 'log-all';
  /** A `ufw route` (forwarding) rule. */
  route: boolean;
  direction: 'in' | 'out';
  /** Interfaces: `in on eth0`, and for route rules also `out on eth1`. */
  interfaceIn: string;
  interfaceOut: string;
  /** `tcp`, `udp`, `any`, … (for an app rule: taken from its profile). */
  proto: string;
  /** Destination port(s): `22`, `6000:6007`, `80,443`, or `any`. */
  dport: string;
  /** `any`, or an address or network as ufw normalised it. */
  dst: string;
  sport: string;
  src: string;
  /** App profile names (`OpenSSH`, `WWW Full`), or `''`. */
  dapp: string;
  sapp: string;
  comment: string;
  /** Which of ufw's rule files hold it. */
  families: ('v4' | 'v6')[];
}

export type UfwState =
  | { kind: 'missing' }
  | {
      kind: 'ufw';
      /** The firewall is running (`ufw status` says active). */
      active: boolean;
      /** IPV6=yes in /etc/default/ufw: rules for any address get an IPv6 copy. */
      ipv6: boolean;
      defaults: { incoming: UfwPolicy | 'unknown'; outgoing: UfwPolicy | 'unknown'; routed: UfwPolicy | 'unknown' };
      /** The added rules, in ufw's order, whether or not the firewall runs. */
      rules: UfwRule[];
    };

// Reads ufw's own files, which hold the added rules whether or not the firewall runs
// (`ufw status` lists rules only when it is active). Tuple lines are ufw's machine-readable record.
// Whether it runs is decided as `ufw status` decides it (get_status in ufw's backend_iptables.py):
// its user chains are loaded in the kernel, else inactive; any other iptables failure is an error.
// iptables answers in a few ms where ufw's Python start-up costs ~100 ms of the host's CPU on every
// run; one listing per family and shell builtins for the rest keep it to a few processes. The
// status line keeps ufw's words.
// Exported for facts that judge something against the firewall in the same round trip (docker.ts).
export const UFW_STATE_SCRIPT = `PATH=$PATH:/usr/sbin:/sbin
command -v ufw >/dev/null 2>&1 || { echo missing; exit 0; }
echo ufw
v6=no
while IFS= read -r l || [ -n "$l" ]; do
  case $l in IPV6=*|DEFAULT_INPUT_POLICY=*|DEFAULT_OUTPUT_POLICY=*|DEFAULT_FORWARD_POLICY=*) printf '%s\\n' "$l" ;; esac
  case $l in IPV6=yes|'IPV6="yes"') [ -e /proc/sys/net/ipv6 ] && v6=yes ;; esac
done < /etc/default/ufw
ufw_status() {
  t=$(LC_ALL=C /usr/sbin/iptables -w -S 2>&1) || { echo "ERROR: problem running iptables: $t"; return; }
  for c in input output forward; do
    case $t in *"-N ufw-user-$c"*) ;; *) echo 'Status: inactive'; return ;; esac
  done
  if [ $v6 = yes ]; then
    t=$(LC_ALL=C /usr/sbin/ip6tables -w -S 2>/dev/null) || { echo 'ERROR: problem running ip6tables'; return; }
    for c in input output forward; do
      case $t in *"-N ufw6-user-$c"*) ;; *) echo 'ERROR: problem running ip6tables'; return ;; esac
    done
  fi
  echo 'Status: active'
}
printf 'status '; ufw_status
[ -f /etc/ufw/user.rules ] && sed -n 's/^### tuple ###/v4/p' /etc/ufw/user.rules
[ -f /etc/ufw/user6.rules ] && sed -n 's/^### tuple ###/v6/p' /etc/ufw/user6.rules
exit 0`;

/**
 * ufw's state in one read: installed or not, running, default policies and every added rule.
 *
 * @example
 * const s = await host.fact(ufwState);
 * if (s.kind === 'ufw' && !s.active) console.log(`${s.rules.length} rules, firewall off`);
 */
export const ufwState: Fact<UfwState> = defineFact('ufw.state', sh`${raw(UFW_STATE_SCRIPT)}`, parseUfwState, {
  // Whether the firewall runs is kernel state, changed only by the ufw operations, which predict it.
  reads: ['/etc/ufw/', '/etc/default/ufw', '/usr/sbin/ufw'],
});

const POLICIES: Record<string, UfwPolicy> = { ACCEPT: 'allow', DROP: 'deny', REJECT: 'reject' };

/**
 * Pure parser of the {@link ufwState} script.
 *
 * @example parseUfwState({ stdout: 'missing\n', stderr: '', exitCode: 0 }) // { kind: 'missing' }
 */
export function parseUfwState({ stdout, stderr, exitCode }: FactOutput): UfwState {
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  if (lines[0] === 'missing') return { kind: 'missing' };
  if (lines[0] !== 'ufw' || exitCode !== 0) throw new Error(`unexpected output (exit ${exitCode}): ${JSON.stringify((stdout + stderr).slice(0, 300))}`);
  const status = lines.find((l) => l.startsWith('status '))?.slice(7).trim() ?? '';
  if (!/^Status: (active|inactive)$/.test(status)) throw new Error(`ufw status said ${JSON.stringify(status)}`);
  const vars = new Map<string, string>();
  const rules: UfwRule[] = [];
  for (const line of lines.slice(1)) {
    const v = /^([A-Z0-9_]+)="?([^"]*)"?$/.exec(line);
    if (v?.[1]) vars.set(v[1], v[2] ?? '');
    const t = /^(v4|v6) (.*)$/.exec(line);
    if (t?.[2]) mergeRule(rules, parseTuple(t[2], t[1] as 'v4' | 'v6'));
  }
  const policy = (key: string) => POLICIES[vars.get(key) ?? ''] ?? 'unknown';
  return {
    kind: 'ufw',
    active: status === 'Status: active',
    ipv6: vars.get('IPV6') === 'yes',
    defaults: { incoming: policy('DEFAULT_INPUT_POLICY'), outgoing: policy('DEFAULT_OUTPUT_POLICY'), routed: policy('DEFAULT_FORWARD_POLICY') },
    rules,
  };
}

/** `0.0.0.0/0` and `::/0` are both "any address"; the family is recorded separately. */
function anyAddress(address: string): string {
  return address === '0.0.0.0/0' || address === '::/0' ? 'any' : address;
}

/**
 * Pure parser of one tuple (after `### tuple ###`):
 * `ACTION PROTO DPORT DST SPORT SRC [DAPP SAPP] DIRECTION [comment=HEX]`, where ACTION may be
 * `route:allow` or `allow_log`, DIRECTION `in`, `out`, `in_eth0` or `in_eth0!out_eth1`, and app
 * names have spaces as `%20`.
 *
 * @example parseTuple('allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in', 'v4').dport // '22'
 */
export function parseTuple(text: string, family: 'v4' | 'v6'): UfwRule {
  const words = text.trim().split(/\s+/);
  const comment = words.at(-1)?.startsWith('comment=') ? Buffer.from((words.pop() as string).slice(8), 'hex').toString() : '';
  if (words.length !== 7 && words.length !== 9) throw new Error(`unexpected ufw tuple ${JSON.stringify(text)}`);
  const [actionWord = '', proto = '', dport = '', dst = '', sport = '', src = ''] = words;
  const [dapp, sapp] = words.length === 9 ? [words[6] ?? '', words[7] ?? ''] : ['-', '-'];
  const route = actionWord.startsWith('route:');
  const [action = '', log = ''] = actionWord.replace(/^route:/, '').split('_');
  if (!['allow', 'deny', 'reject', 'limit'].includes(action) || !['', 'log', 'log-all'].includes(log)) throw new Error(`unexpected ufw action in ${JSON.stringify(text)}`);
  const interfaces = (words.at(-1) ?? '').split('!');
  const side = (dir: 'in' | 'out') => interfaces.find((i) => i === dir || i.startsWith(`${dir}_`));
  const first = interfaces[0] ?? '';
  const direction = first.startsWith('out') ? 'out' : 'in';
  const iface = (s: string | undefined) => (s && s.includes('_') ? s.slice(s.indexOf('_') + 1) : '');
  const app = (a: string) => (a === '-' ? '' : decodeURIComponent(a));
  return {
    action: action as UfwRule['action'],
    log: log as UfwRule['log'],
    route,
    direction,
    interfaceIn: iface(side('in')),
    interfaceOut: iface(side('out')),
    proto,
    dport,
    dst: anyAddress(dst),
    sport,
    src: anyAddress(src),
    dapp: app(dapp),
    sapp: app(sapp),
    comment,
    families: [family],
  };
}

/**
 * What makes two tuples the same rule (the comment and family aside).
 *
 * @example ruleIdentity(parseTuple('allow tcp 80,443 ::/0 any ::/0 in', 'v6')) === ruleIdentity(parseTuple('allow tcp 443,80 0.0.0.0/0 any 0.0.0.0/0 in', 'v4')) // true
 */
export function ruleIdentity(r: Omit<UfwRule, 'comment' | 'families'>): string {
  // For an app rule the ports and protocol come from the profile; the app name is the identity.
  const ports = r.dapp ? `app:${r.dapp}` : `${r.proto} ${r.dport.split(',').sort().join(',')}`;
  const sports = r.sapp ? `app:${r.sapp}` : r.sport;
  return [r.route ? 'route' : '', r.action, r.log, r.direction, r.interfaceIn, r.interfaceOut, ports, r.dst, sports, r.src].join('|');
}

function mergeRule(rules: UfwRule[], rule: UfwRule): void {
  const same = rules.find((r) => ruleIdentity(r) === ruleIdentity(rule));
  if (same) same.families.push(...rule.families.filter((f) => !same.families.includes(f)));
  else rules.push(rule);
}
