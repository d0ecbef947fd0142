// The ufw.state fact decides "active" from the kernel's chains, as `ufw status` does, without
// starting ufw's Python on every run. Here `ufw status` itself is the oracle, on a real host, in
// each state the firewall can be in, including one where ufw's files and the kernel disagree.
import t, { type Test } from 'tap';
import { parseUfwState, UFW_STATE_SCRIPT } from '../../lib/facts/ufw.ts';
import { withLab } from '../../lab/lab.ts';

const lab = await withLab(t, 1);
const host = lab.hosts[0];
if (!host) throw new Error('no lab host');
const ssh = async (cmd: string, input?: string) => {
  const r = await lab.ssh(host.name, cmd, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`${cmd} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
};
const fact = async () => parseUfwState({ stdout: await ssh('sh -s', UFW_STATE_SCRIPT), stderr: '', exitCode: 0 });
const ufwSays = async () => (await ssh('LC_ALL=C ufw status | head -n 1')).trim();

async function agrees(t: Test, state: string): Promise<void> {
  const s = await fact();
  if (s.kind !== 'ufw') return void t.fail(`${state}: ufw is installed`);
  t.equal(s.active ? 'Status: active' : 'Status: inactive', await ufwSays(), `${state}: the fact says what ufw status says`);
}

t.test('not installed, then installed and inactive, enabled, disabled, re-enabled', async (t) => {
  t.same(await fact(), { kind: 'missing' }, 'no ufw: missing');
  await ssh('apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ufw >/dev/null');
  await agrees(t, 'fresh install');
  await ssh(`ufw allow from ${lab.bridgeAddress} to any port 22 proto tcp >/dev/null && ufw --force enable >/dev/null`);
  await agrees(t, 'enabled');
  t.match(await fact(), { kind: 'ufw', active: true });
  await ssh('ufw disable >/dev/null');
  await agrees(t, 'disabled');
  t.match(await fact(), { kind: 'ufw', active: false });
});

t.test("ufw's files say enabled but its chains are not loaded: inactive, as ufw status says", async (t) => {
  // ENABLED=yes is what boot reads; until ufw starts, the kernel has no ufw chains.
  await ssh("sed -i 's/^ENABLED=.*/ENABLED=yes/' /etc/ufw/ufw.conf");
  await agrees(t, 'ENABLED=yes, chains not loaded');
  t.match(await fact(), { kind: 'ufw', active: false });
  await ssh('ufw reload >/dev/null');
  await agrees(t, 'reloaded');
  t.match(await fact(), { kind: 'ufw', active: true });
});

t.test('not root: an error, as ufw status refuses too', async (t) => {
  const r = await lab.ssh(host.name, 'sh -s', { user: 'ops', input: UFW_STATE_SCRIPT });
  t.throws(() => parseUfwState({ stdout: r.stdout, stderr: r.stderr, exitCode: r.code }), /ufw status said "ERROR: problem running iptables: .*Permission denied/);
});
