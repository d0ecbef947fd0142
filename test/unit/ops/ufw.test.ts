import t from 'tap';
import type { Change, Operation } from '../../../lib/ops/operation.ts';
import { TackleError } from '../../../lib/errors.ts';
import type { SshSession } from '../../../lib/facts/sshd.ts';
import { parseUfwState, type UfwState } from '../../../lib/facts/ufw.ts';
import { ufw } from '../../../lib/ops/ufw.ts';

// States as the ufwState fact parses them (the outputs are captured ones, see test/unit/facts/ufw.test.ts).
const head = (status: 'active' | 'inactive') => `ufw\nstatus Status: ${status}\nIPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\nDEFAULT_FORWARD_POLICY="DROP"\n`;
const state = (status: 'active' | 'inactive', tuples: string[] = []): UfwState => parseUfwState({ stdout: head(status) + tuples.map((l) => `${l}\n`).join(''), stderr: '', exitCode: 0 });
const missing: UfwState = { kind: 'missing' };
const fresh = state('inactive');
const SSH_ANY = ['v4 limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in comment=737368', 'v6 limit tcp 22 ::/0 any ::/0 in comment=737368'];
const SSH_CONTROLLER = ['v4 allow tcp 22 0.0.0.0/0 any 10.200.0.1 in comment=636f6e74726f6c6c6572'];
const WEB = ['v4 allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in', 'v6 allow tcp 80 ::/0 any ::/0 in'];

const session: SshSession = { kind: 'ssh', clientAddress: '10.200.0.1', clientPort: 40000, serverAddress: '10.200.0.11', serverPort: 22 };
const plan = (op: Operation, ufwFact: UfwState, s: SshSession = session): Change | undefined => op.plan({ ufw: ufwFact, session: s, hook: { kind: 'missing' } });
const commands = (c: Change | undefined) => c?.actions.map((a) => a.command.toString());

function refusal(fn: () => unknown): TackleError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TackleError && err.phase === 'operation') return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

t.test('ufw.rule: the command, and no change once ufw has it (both families, same comment)', async (t) => {
  const op = ufw.rule({ action: 'limit', port: 22, proto: 'tcp', comment: 'ssh' });
  t.equal(op.name, 'ufw.rule limit 22/tcp');
  t.same(commands(plan(op, fresh)), ["ufw limit in proto tcp from any to any port 22 comment ssh"]);
  t.equal(plan(op, state('active', SSH_ANY)), undefined);
  t.same(commands(plan(op, state('active', [SSH_ANY[0] as string]))), ['ufw limit in proto tcp from any to any port 22 comment ssh'], 'the IPv6 copy is missing: add again (ufw skips the existing one)');
  t.ok(plan(ufw.rule({ action: 'limit', port: 22, proto: 'tcp', comment: 'other' }), state('active', SSH_ANY)), 'a new comment updates the rule');
  t.equal(plan(ufw.rule({ action: 'limit', port: 22, proto: 'tcp' }), state('active', SSH_ANY)), undefined, 'no comment given: the comment is not managed');
  t.same(commands(plan(op, missing)), ['ufw limit in proto tcp from any to any port 22 comment ssh'], 'ufw not installed yet: planned anyway');
  t.match(plan(op, missing)?.summary, /ufw is not installed: this fails/);
});

t.test('ufw.rule: addresses are normalised as ufw does, so a converged rule stays converged', async (t) => {
  const net = ufw.rule({ action: 'allow', port: 80, proto: 'tcp', from: '10.200.0.5/24', comment: 'web x' });
  t.equal(net.name, 'ufw.rule allow 80/tcp from 10.200.0.0/24');
  t.equal(plan(net, state('inactive', ['v4 allow tcp 80 0.0.0.0/0 any 10.200.0.0/24 in comment=7765622078'])), undefined, 'IPv4 only: no IPv6 copy expected');
  const host32 = ufw.rule({ action: 'allow', from: '10.1.2.3/32' });
  t.equal(plan(host32, state('inactive', ['v4 allow any any 0.0.0.0/0 any 10.1.2.3 in'])), undefined);
  const v6 = ufw.rule({ action: 'allow', port: 443, proto: 'tcp', from: '2001:DB8:0:0::1/128' });
  t.equal(v6.name, 'ufw.rule allow 443/tcp from 2001:db8::1');
  t.equal(plan(v6, state('inactive', ['v6 allow tcp 443 ::/0 any 2001:db8::1 in'])), undefined);
  const app = ufw.rule({ action: 'allow', service: 'WWW Full' });
  t.same(commands(plan(app, fresh)), ["ufw allow in from any to any app 'WWW Full'"]);
  t.equal(plan(app, state('inactive', ['v4 allow tcp 80,443 0.0.0.0/0 any 0.0.0.0/0 WWW%20Full - in', 'v6 allow tcp 80,443 ::/0 any ::/0 WWW%20Full - in'])), undefined);
  const out = ufw.rule({ action: 'reject', direction: 'out', port: 25 });
  t.same(commands(plan(out, fresh)), ['ufw reject out from any to any port 25']);
  t.same(commands(plan(ufw.rule({ action: 'deny', port: '6000:6007', proto: 'udp' }), fresh)), ['ufw deny in proto udp from any to any port 6000:6007']);
});

t.test('ufw.rule absent: deletes with the same words ufw added it with', async (t) => {
  const op = ufw.rule({ action: 'allow', port: 80, proto: 'tcp', state: 'absent' });
  t.equal(op.name, 'ufw.rule allow 80/tcp (absent)');
  t.same(commands(plan(op, state('inactive', WEB))), ['ufw delete allow in proto tcp from any to any port 80']);
  t.equal(plan(op, fresh), undefined);
  t.equal(plan(op, missing), undefined);
});

t.test('ufw.rules purge: exactly this set, additions first; every recorded shape can be deleted', async (t) => {
  const varied = state('inactive', [
    'v4 allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in',
    'v6 allow tcp 22 ::/0 any ::/0 in',
    'v4 limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 OpenSSH - in',
    'v4 route:allow tcp 80 10.0.0.0/8 any 0.0.0.0/0 in_eth0!out_eth1',
    'v4 allow_log tcp 22 0.0.0.0/0 1234 1.2.3.4 in',
    'v4 allow udp 53 0.0.0.0/0 any 0.0.0.0/0 in_eth0',
    'v6 allow tcp 443 ::/0 any 2001:db8::/32 in',
  ]);
  const op = ufw.rules({ purge: true, rules: [{ action: 'allow', port: 22, proto: 'tcp' }, { action: 'allow', port: 80, proto: 'tcp' }] });
  t.equal(op.name, 'ufw.rules (exactly)');
  // These commands deleted exactly these rules on a lab host (ufw 0.36.2).
  t.same(commands(plan(op, varied)), [
    'ufw allow in proto tcp from any to any port 80',
    'ufw delete limit in from any to any app OpenSSH',
    'ufw route delete allow in on eth0 out on eth1 proto tcp from any to 10.0.0.0/8 port 80',
    'ufw delete allow in log proto tcp from 1.2.3.4 port 1234 to any port 22',
    'ufw delete allow in on eth0 proto udp from any to any port 53',
    'ufw delete allow in proto tcp from 2001:db8::/32 to any port 443',
  ]);
  t.equal(plan(op, state('active', ['v4 allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in', 'v6 allow tcp 22 ::/0 any ::/0 in', ...WEB])), undefined, 'converged');
  t.same(commands(plan(ufw.rules({ rules: [{ action: 'allow', port: 80, proto: 'tcp' }] }), varied)), ['ufw allow in proto tcp from any to any port 80'], 'without purge nothing is deleted');
});

t.test('SSH safety while active: a purge or delete that would drop the SSH rule is refused', async (t) => {
  const active = state('active', [...SSH_ANY, ...WEB]);
  const purge = ufw.rules({ purge: true, rules: [{ action: 'allow', port: 80, proto: 'tcp' }] });
  t.match(refusal(() => plan(purge, active)).reason, /refusing to delete limit 22\/tcp while ufw is active: no rule would allow SSH port 22\/tcp from anywhere or from 10\.200\.0\.1/);
  t.ok(plan(purge, state('inactive', [...SSH_ANY, ...WEB])), 'inactive: nothing to cut off');
  // A rule from the controller's network still lets it in.
  t.ok(plan(ufw.rules({ purge: true, rules: [{ action: 'allow', port: 22, proto: 'tcp', from: '10.200.0.0/24' }] }), active));
  t.match(refusal(() => plan(ufw.rule({ action: 'limit', port: 22, proto: 'tcp', state: 'absent' }), active)).reason, /refusing to delete limit 22\/tcp/);
  // Connected on 2222: deleting the port 22 rule is fine.
  t.ok(plan(ufw.rule({ action: 'limit', port: 22, proto: 'tcp', state: 'absent' }), state('active', [...SSH_ANY, 'v4 allow tcp 2222 0.0.0.0/0 any 0.0.0.0/0 in']), { ...session, serverPort: 2222 }));
});

t.test('ufw.enabled: refused at planning time unless the SSH port is allowed', async (t) => {
  const op = ufw.enabled({ enabled: true });
  t.equal(op.name, 'ufw.enabled');
  const err = refusal(() => plan(op, state('inactive', WEB)));
  t.equal(err.phase, 'operation');
  t.match(err.reason, /^ufw\.enabled: refusing to enable ufw: no rule would allow SSH port 22\/tcp from anywhere or from 10\.200\.0\.1 \(the address tackle connects from\).*ufw\.rule\(\{ action: 'limit', port: 22, proto: 'tcp' \}\)/);
  t.match(refusal(() => plan(op, state('inactive', WEB), { ...session, serverPort: 2222 })).reason, /SSH port 2222\/tcp/, 'names the port in use');
  t.match(refusal(() => plan(ufw.enabled({ sshPort: 2200 }), state('inactive', SSH_ANY))).reason, /SSH port 2200/);
  t.match(refusal(() => plan(op, state('inactive', ['v4 deny tcp 22 0.0.0.0/0 any 0.0.0.0/0 in']))).reason, /refusing/, 'deny does not count');
  t.match(refusal(() => plan(op, state('inactive', ['v4 allow udp 22 0.0.0.0/0 any 0.0.0.0/0 in']))).reason, /refusing/, 'udp does not count');
  t.match(refusal(() => plan(op, state('inactive', ['v4 allow tcp 22 0.0.0.0/0 any 10.9.9.9 in']))).reason, /refusing/, 'from another address does not count');
  t.match(refusal(() => plan(op, state('inactive', ['v4 allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in_eth1']))).reason, /refusing/, 'on one interface only does not count');
  t.match(refusal(() => plan(op, state('inactive', ['v6 allow tcp 22 ::/0 any ::/0 in']))).reason, /refusing/, 'IPv6 only does not let an IPv4 controller in');

  const allowed = (tuples: string[]) => commands(plan(op, state('inactive', tuples)));
  t.same(allowed(SSH_ANY), ['ufw --force enable']);
  t.same(allowed(SSH_CONTROLLER), ['ufw --force enable'], 'from the controller only');
  t.same(allowed(['v4 allow tcp 20:30 0.0.0.0/0 any 10.200.0.0/16 in']), ['ufw --force enable'], 'a range, from the controller network');
  t.same(allowed(['v4 limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 OpenSSH - in']), ['ufw --force enable'], 'the OpenSSH profile');
  t.same(allowed(['v4 allow any any 0.0.0.0/0 any 10.200.0.1 in']), ['ufw --force enable'], 'everything from the controller');
  t.same(plan(op, state('inactive', SSH_ANY))?.checks?.map((c) => c.describe), ['a fresh SSH login still works (else ufw is disabled again)']);
  t.equal(plan(op, state('active', SSH_ANY)), undefined, 'already enabled');
});

t.test('ufw.enabled: no rules at all (Ubuntu ships ufw so) is refused when planned: a task planned as a whole sees the rules its earlier steps add', async (t) => {
  t.match(refusal(() => plan(ufw.enabled({}), fresh)).reason, /refusing to enable ufw: no rule would allow SSH port 22/);
});

t.test('ufw.enabled: its effects say the firewall runs, and whether the DOCKER-USER rules load with it', async (t) => {
  const change = plan(ufw.enabled({}), state('inactive', SSH_ANY));
  t.match(change?.effects?.facts?.['ufw.state'], { kind: 'ufw', active: true });
  t.same(change?.effects?.facts?.['docker.userGuard'], { loaded: false }, 'the hook has no DOCKER-USER rules');
});

t.test('ufw.enabled: ufw not installed (nothing before it installs it) is guarded on the host, and says it fails', async (t) => {
  const change = plan(ufw.enabled({}), missing);
  const [guard, enable] = commands(change) ?? [];
  t.match(guard, /^awk -v port=22 -v client=10\.200\.0\.1 .* \/etc\/ufw\/user\.rules \/etc\/ufw\/user6\.rules \|\| \{ echo 'tackle: refusing to enable ufw: no rule allows SSH port 22\/tcp from anywhere or from 10\.200\.0\.1' >&2; exit 1; \}$/s);
  t.equal(enable, 'ufw --force enable');
  t.match(change?.summary, /ufw is not installed: this fails/);
});

t.test('ufw.enabled false, and local connections', async (t) => {
  t.same(commands(plan(ufw.enabled({ enabled: false }), state('active', SSH_ANY))), ['ufw disable']);
  t.equal(plan(ufw.enabled({ enabled: false }), fresh), undefined);
  t.equal(plan(ufw.enabled({ enabled: false }), missing), undefined);
  // Over a local connection the controller's address is unknown: only "from anywhere" counts, on port 22.
  t.match(refusal(() => plan(ufw.enabled({}), state('inactive', SSH_CONTROLLER), { kind: 'none' })).reason, /port 22\/tcp from anywhere, so/);
});

t.test('ufw.defaults', async (t) => {
  const op = ufw.defaults({ incoming: 'deny', outgoing: 'allow', routed: 'deny' });
  t.equal(plan(op, fresh), undefined, "Debian's package defaults");
  t.match(plan(op, missing)?.summary, /ufw is not installed: this fails/, 'not installed: a step installing it before would show here as installed');
  const reject = ufw.defaults({ incoming: 'reject', outgoing: 'deny' });
  t.same(commands(plan(reject, fresh)), ['ufw default reject incoming', 'ufw default deny outgoing']);
  t.equal(plan(reject, fresh)?.summary, 'default policy incoming deny → reject, outgoing allow → deny');
  t.match(plan(reject, missing)?.summary, /ufw is not installed: this fails/);
  t.match(refusal(() => plan(reject, state('active', WEB))).reason, /refusing to set the incoming policy to reject while ufw is active/);
  t.throws(() => ufw.defaults({}), /give incoming/);
  t.throws(() => ufw.defaults({ incoming: 'drop' as never }), /allow, deny or reject/);
});

t.test('argument errors', async (t) => {
  t.throws(() => ufw.rule({ action: 'permit' as never }), /action must be/);
  t.throws(() => ufw.rule({ action: 'allow', port: 70000 }), /port must be/);
  t.throws(() => ufw.rule({ action: 'allow', port: '6000:6007' }), /needs proto 'tcp' or 'udp'/);
  t.throws(() => ufw.rule({ action: 'allow', service: 'OpenSSH', port: 22 }), /not both/);
  t.throws(() => ufw.rule({ action: 'allow', from: '10.0.0.300' }), /from must be 'any', an IP address/);
  t.throws(() => ufw.rule({ action: 'allow', from: '10.0.0.0/33' }), /from must be/);
  t.throws(() => ufw.rule({ action: 'allow', from: '10.0.0.1', to: '::1' }), /mix IPv4 and IPv6/);
  t.throws(() => ufw.rule({ action: 'allow', comment: 'a\nb' }), /one line/);
  t.throws(() => ufw.enabled({ sshPort: 0 }), /sshPort/);
});
