import t from 'tap';
import { parseTuple, parseUfwState, ruleIdentity, UFW_STATE_SCRIPT, ufwState } from '../../../lib/facts/ufw.ts';

// Captured with the ufwState script on lab hosts (Debian 12, ufw 0.36.2).
const NOT_INSTALLED = { stdout: 'missing\n', stderr: '', exitCode: 0 };
// After the hardening task: enabled, three rules, one of them only from the controller (IPv4 only).
const HARDENED = {
  stdout:
    'ufw\nstatus Status: active\nIPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\nDEFAULT_FORWARD_POLICY="DROP"\n' +
    'v4 allow tcp 22 0.0.0.0/0 any 10.200.0.1 in comment=636f6e74726f6c6c6572\nv4 limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in comment=737368\nv4 allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in\n' +
    'v6 limit tcp 22 ::/0 any ::/0 in comment=737368\nv6 allow tcp 80 ::/0 any ::/0 in\n',
  stderr: '',
  exitCode: 0,
};
// Inactive, with one rule of each shape ufw records: app, comment, range, out, interface, route, log, v6-only.
const VARIED = {
  stdout:
    'ufw\nstatus Status: inactive\nIPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\nDEFAULT_FORWARD_POLICY="DROP"\n' +
    'v4 allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in\nv4 limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 OpenSSH - in\nv4 allow tcp 80 0.0.0.0/0 any 10.200.0.0/24 in comment=7765622078\n' +
    'v4 deny udp 6000:6007 0.0.0.0/0 any 0.0.0.0/0 in\nv4 reject any 25 0.0.0.0/0 any 0.0.0.0/0 out\nv4 allow udp 53 0.0.0.0/0 any 0.0.0.0/0 in_eth0\n' +
    'v4 allow any any 0.0.0.0/0 any 10.1.2.3 in\nv4 route:allow tcp 80 10.0.0.0/8 any 0.0.0.0/0 in_eth0!out_eth1\nv4 allow_log tcp 22 0.0.0.0/0 1234 1.2.3.4 in\n' +
    'v4 allow tcp 80,443 0.0.0.0/0 any 0.0.0.0/0 WWW%20Full - in\nv6 allow tcp 22 ::/0 any ::/0 in\nv6 limit tcp 22 ::/0 any ::/0 OpenSSH - in\nv6 deny udp 6000:6007 ::/0 any ::/0 in\n' +
    'v6 reject any 25 ::/0 any ::/0 out\nv6 allow udp 53 ::/0 any ::/0 in_eth0\nv6 allow tcp 443 ::/0 any 2001:db8::/32 in\nv6 allow tcp 80,443 ::/0 any ::/0 WWW%20Full - in\n',
  stderr: '',
  exitCode: 0,
};

t.test('not installed', async (t) => {
  t.same(parseUfwState(NOT_INSTALLED), { kind: 'missing' });
  t.equal(ufwState.key, 'ufw.state');
});

t.test('active, after hardening: IPv4 and IPv6 copies merged, comments decoded', async (t) => {
  const s = parseUfwState(HARDENED);
  if (s.kind !== 'ufw') throw new Error('expected ufw');
  t.equal(s.active, true);
  t.equal(s.ipv6, true);
  t.same(s.defaults, { incoming: 'deny', outgoing: 'allow', routed: 'deny' });
  t.same(
    s.rules.map((r) => [r.action, r.proto, r.dport, r.src, r.comment, r.families]),
    [
      ['allow', 'tcp', '22', '10.200.0.1', 'controller', ['v4']],
      ['limit', 'tcp', '22', 'any', 'ssh', ['v4', 'v6']],
      ['allow', 'tcp', '80', 'any', '', ['v4', 'v6']],
    ],
  );
});

t.test('inactive, every shape of rule', async (t) => {
  const s = parseUfwState(VARIED);
  if (s.kind !== 'ufw') throw new Error('expected ufw');
  t.equal(s.active, false, 'rules are read even when the firewall is off');
  t.equal(s.rules.length, 11);
  const by = (i: number) => s.rules[i];
  t.match(by(1), { action: 'limit', dapp: 'OpenSSH', sapp: '', proto: 'tcp', dport: '22', families: ['v4', 'v6'] }, 'app rule, ports from its profile');
  t.match(by(2), { src: '10.200.0.0/24', comment: 'web x', families: ['v4'] });
  t.match(by(3), { action: 'deny', proto: 'udp', dport: '6000:6007' });
  t.match(by(4), { action: 'reject', direction: 'out', proto: 'any', dport: '25' });
  t.match(by(5), { interfaceIn: 'eth0', direction: 'in' });
  t.match(by(6), { proto: 'any', dport: 'any', src: '10.1.2.3' });
  t.match(by(7), { route: true, interfaceIn: 'eth0', interfaceOut: 'eth1', dst: '10.0.0.0/8' });
  t.match(by(8), { log: 'log', sport: '1234', src: '1.2.3.4' });
  t.match(by(9), { dapp: 'WWW Full', dport: '80,443' }, '%20 decoded');
  t.match(by(10), { src: '2001:db8::/32', families: ['v6'] }, 'an IPv6-only rule');
});

t.test('tuples: errors, and identity ignores comment and port-list order', async (t) => {
  t.throws(() => parseTuple('allow tcp 22', 'v4'), /unexpected ufw tuple/);
  t.throws(() => parseTuple('permit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in', 'v4'), /unexpected ufw action/);
  const a = parseTuple('allow tcp 80,443 0.0.0.0/0 any 0.0.0.0/0 in comment=61', 'v4');
  const b = parseTuple('allow tcp 443,80 ::/0 any ::/0 in', 'v6');
  t.equal(ruleIdentity(a), ruleIdentity(b));
  t.throws(() => parseUfwState({ stdout: 'ufw\nstatus ERROR: You need to be root to run this script\n', stderr: '', exitCode: 0 }), /ufw status said/);
});

// Captured on a lab host as the user ops: iptables refuses, as ufw status does for non-root.
const NOT_ROOT = {
  stdout: 'ufw\nstatus ERROR: problem running iptables: iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\nIPV6=yes\n',
  stderr: 'grep: /etc/ufw/user.rules: Permission denied\ngrep: /etc/ufw/user6.rules: Permission denied\n',
  exitCode: 0,
};

t.test("whether ufw runs is read from the kernel's chains, never by starting ufw (Python, ~100 ms of host CPU)", async (t) => {
  t.notMatch(UFW_STATE_SCRIPT, /(^|[\s;&|(])ufw\s+(status|show)\b/m, 'no ufw status / ufw show');
  t.match(UFW_STATE_SCRIPT, /iptables -w -S\b[\s\S]*-N ufw-user-\$c/, "the chains ufw status looks at, in one listing (test/e2e/ufw-state.test.ts compares the two on a host)");
  t.throws(() => parseUfwState(NOT_ROOT), /ufw status said "ERROR: problem running iptables: .*Permission denied/);
});
