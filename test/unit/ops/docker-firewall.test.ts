import t from 'tap';
import type { Change } from '../../../lib/ops/operation.ts';
import type { PathInfo } from '../../../lib/facts/files.ts';
import { parseTuple, parseUfwState, type UfwState } from '../../../lib/facts/ufw.ts';
import { dockerUserScript, mirrorRule, UFW_AFTER_INIT } from '../../../lib/ops/docker-firewall.ts';
import { ufw } from '../../../lib/ops/ufw.ts';
import { createHash } from 'node:crypto';

const head = (status: 'active' | 'inactive') => `ufw\nstatus Status: ${status}\nIPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\n`;
const state = (status: 'active' | 'inactive', tuples: string[] = []): UfwState => parseUfwState({ stdout: head(status) + tuples.map((l) => `${l}\n`).join(''), stderr: '', exitCode: 0 });
const RULES = [
  'v4 allow tcp 22 0.0.0.0/0 any 10.200.0.1 in',
  'v4 limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in',
  'v6 limit tcp 22 ::/0 any ::/0 in',
  'v4 allow tcp 80,443 0.0.0.0/0 any 0.0.0.0/0 in',
  'v4 deny udp 6000:6007 0.0.0.0/0 any 0.0.0.0/0 in_eth1',
  'v4 allow any any 0.0.0.0/0 any 192.168.0.0/16 in',
  'v4 allow tcp 8080 0.0.0.0/0 any 0.0.0.0/0 out',
  'v4 allow tcp any 0.0.0.0/0 any 0.0.0.0/0 in OpenSSH -',
];

t.test('mirrorRule: ufw rules for new inbound connections become RETURN/DROP on the port the client asked for', async (t) => {
  const mirror = (tuple: string) => mirrorRule(parseTuple(tuple.replace(/^v4 /, ''), 'v4')).map((a) => a.join(' '));
  t.same(mirror(RULES[0] as string), ['-s 10.200.0.1 -p tcp -m conntrack --ctorigdstport 22 -j RETURN'], 'a source-limited allow keeps its source');
  t.same(mirror(RULES[1] as string), ['-p tcp -m conntrack --ctorigdstport 22 -j RETURN'], 'limit counts as allow');
  t.same(mirror(RULES[3] as string), ['-p tcp -m conntrack --ctorigdstport 80 -j RETURN', '-p tcp -m conntrack --ctorigdstport 443 -j RETURN'], 'a port list: one rule per port');
  t.same(mirror(RULES[4] as string), ['-i eth1 -p udp -m conntrack --ctorigdstport 6000:6007 -j DROP'], 'deny drops, a range stays a range, the interface is kept');
  t.same(mirror(RULES[5] as string), ['-s 192.168.0.0/16 -j RETURN'], 'any protocol, any port');
  t.same(mirror(RULES[6] as string), [], 'outgoing rules do not concern published ports');
  t.same(mirror(RULES[7] as string), [], "app profiles: their ports are ufw's to know");
  t.same(mirrorRule(parseTuple('limit tcp 22 ::/0 any ::/0 in', 'v6')), [], 'IPv6 rules: Docker 20.10 does not DNAT IPv6');
});

t.test('dockerUserScript: bridges-bound traffic through the mirrored rules, then drop; stop removes it all', async (t) => {
  const script = dockerUserScript(state('active', RULES).kind === 'ufw' ? (state('active', RULES) as Extract<UfwState, { kind: 'ufw' }>).rules : []);
  t.match(script, /^#!\/bin\/sh\n/);
  const start = /start\)\n([\s\S]*?)\n  ;;/.exec(script)?.[1] ?? '';
  t.same(start.split('\n').map((l) => l.trim()), [
    'set -e',
    'remove',
    'iptables -w -N DOCKER-USER 2>/dev/null || true',
    'iptables -w -N TACKLE-UFW-DOCKER',
    'iptables -w -A TACKLE-UFW-DOCKER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
    'iptables -w -A TACKLE-UFW-DOCKER -i docker0 -j RETURN',
    'iptables -w -A TACKLE-UFW-DOCKER -i br-+ -j RETURN',
    'iptables -w -A TACKLE-UFW-DOCKER -s 10.200.0.1 -p tcp -m conntrack --ctorigdstport 22 -j RETURN',
    'iptables -w -A TACKLE-UFW-DOCKER -p tcp -m conntrack --ctorigdstport 22 -j RETURN',
    'iptables -w -A TACKLE-UFW-DOCKER -p tcp -m conntrack --ctorigdstport 80 -j RETURN',
    'iptables -w -A TACKLE-UFW-DOCKER -p tcp -m conntrack --ctorigdstport 443 -j RETURN',
    'iptables -w -A TACKLE-UFW-DOCKER -i eth1 -p udp -m conntrack --ctorigdstport 6000:6007 -j DROP',
    'iptables -w -A TACKLE-UFW-DOCKER -s 192.168.0.0/16 -j RETURN',
    'iptables -w -A TACKLE-UFW-DOCKER -j DROP',
    'iptables -w -I DOCKER-USER 1 -o docker0 -m comment --comment tackle-ufw-docker -j TACKLE-UFW-DOCKER',
    'iptables -w -I DOCKER-USER 2 -o br-+ -m comment --comment tackle-ufw-docker -j TACKLE-UFW-DOCKER',
  ]);
  t.match(script, /stop\|flush-all\)\n  remove\n  ;;/);
});

t.test('ufw.dockerUser plans from ufw, the hook file and the live chain', async (t) => {
  const op = ufw.dockerUser();
  const fileOf = (content: string | undefined): PathInfo =>
    content === undefined
      ? { kind: 'missing' }
      : { kind: 'file', size: Buffer.byteLength(content), sha256: createHash('sha256').update(content).digest('hex'), content, mode: '0750', owner: 'root', group: 'root', uid: 0, gid: 0 };
  const plan = (ufwFact: UfwState, file: string | undefined, loaded: boolean): Change | undefined => op.plan({ hook: fileOf(file), ufw: ufwFact, guard: { loaded } });
  const active = state('active', RULES);
  const current = dockerUserScript((active as Extract<UfwState, { kind: 'ufw' }>).rules);
  const fresh = plan(active, undefined, false);
  t.match(fresh?.summary, `write ${UFW_AFTER_INIT} mirroring 7 ufw rule(s) into DOCKER-USER and reload ufw`, 'the IPv4 and IPv6 copies of a rule count once');
  t.equal(fresh?.actions.at(-1)?.command.toString(), 'ufw reload', 'the hook is written first, then ufw reloads it');
  t.equal(plan(active, current, true), undefined, 'hook current and loaded: no change');
  t.same(plan(active, current, false)?.actions.map((a) => a.command.toString()), ['ufw reload'], 'hook current but not loaded (e.g. written while ufw was off): reload only');
  t.match(plan(state('active', RULES.slice(1)), current, true)?.summary, /mirroring 6 ufw rule\(s\)/, 'ufw rules changed: the hook follows');
  const off = plan(state('inactive', RULES), undefined, false);
  t.match(off?.summary, /\(ufw is not running: they load when it starts\)$/);
  t.notOk(off?.actions.some((a) => a.command.toString() === 'ufw reload'), 'no reload while ufw is off');
  t.equal(plan(state('inactive', RULES), dockerUserScript((state('inactive', RULES) as Extract<UfwState, { kind: 'ufw' }>).rules), false), undefined);
});
