// The lab that every other end-to-end test stands on, checked against its real hosts with the
// OpenSSH client. It needs root; when the lab cannot start this file fails, it never skips.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { run } from '../../lab/exec.ts';
import { OPS_PASSWORD, startLab, STATE_ROOT, withLab } from '../../lab/lab.ts';
import { mountsUnder } from '../../lab/system.ts';
import type { Inventory } from '../../lib/index.ts';

const lab = await withLab(t, 3);

t.test('every host finishes booting with no failed unit', async (t) => {
  await Promise.all(
    lab.hosts.map(async ({ name }) => {
      // --wait blocks until boot is over, so there is no race with units still starting: the answer
      // is then `running`, or `degraded` when a unit failed. The image is made so that nothing
      // fails in a container, so degraded is a regression here, not noise; the diagnostic names
      // the failed units.
      const state = await lab.ssh(name, 'systemctl is-system-running --wait');
      const failed = state.stdout.trim() === 'running' ? '' : (await lab.ssh(name, 'systemctl --failed --no-legend --plain')).stdout;
      t.equal(state.stdout.trim(), 'running', `${name} is running`, { failed, stderr: state.stderr });
    }),
  );
});

t.test('each host has its own host key, and ssh checks it strictly', async (t) => {
  const known = new Map(
    (await readFile(lab.knownHostsPath, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => {
        const [address = '', ...key] = line.split(' ');
        return [address, key.join(' ')] as const;
      }),
  );
  const served = await Promise.all(
    lab.hosts.map(async (host) => {
      const result = await lab.ssh(host.name, 'cat /etc/ssh/ssh_host_ed25519_key.pub');
      t.equal(result.code, 0, `${host.name} answers a strict ssh`, { stderr: result.stderr });
      const key = result.stdout.split(' ').slice(0, 2).join(' ');
      t.equal(key, known.get(host.address), `known_hosts lists ${host.name}'s own key`);
      return key;
    }),
  );
  t.equal(new Set(served).size, lab.hosts.length, 'no two hosts share a key');

  // Proof that the check is really strict: lab2's key listed for lab1's address is refused.
  const [lab1, lab2] = lab.hosts;
  if (!lab1 || !lab2) throw new Error('the lab has fewer than two hosts');
  const swapped = join(dirname(lab.knownHostsPath), 'known_hosts.swapped');
  await writeFile(swapped, `${lab1.address} ${known.get(lab2.address)}\n`);
  const args = lab.sshArgs(lab1.name).map((arg) => (arg === `UserKnownHostsFile=${lab.knownHostsPath}` ? `UserKnownHostsFile=${swapped}` : arg));
  const refused = await run('ssh', [...args, 'true']);
  t.equal(refused.code, 255, 'ssh refuses a host whose key does not match');
  t.match(refused.stderr, /Host key verification failed/);
});

t.test('apt installs a package through the lab proxy', async (t) => {
  const [host] = lab.hosts;
  if (!host) throw new Error('the lab has no hosts');
  const setup = await lab.ssh(host.name, 'ip route show default; apt-config dump Acquire::http::Proxy');
  t.match(setup.stdout, `default via ${lab.bridgeAddress} dev eth0`, 'the default route leads to the bridge');
  t.match(setup.stdout, `Acquire::http::Proxy "${lab.proxyUrl}";`, 'apt uses the lab proxy');

  const install = await lab.ssh(host.name, 'apt-get update && apt-get install -y tree && tree --version');
  t.equal(install.code, 0, 'apt-get update && apt-get install -y tree', { stderr: install.stderr.slice(-2000) });
  t.match(install.stdout, /^tree v\d/m);
});

t.test('admin sudoes without a password, ops only with one', async (t) => {
  const [host] = lab.hosts;
  if (!host) throw new Error('the lab has no hosts');
  const admin = await lab.ssh(host.name, 'sudo -n id -u', { user: 'admin' });
  t.same([admin.code, admin.stdout], [0, '0\n'], 'sudo -n as admin', { stderr: admin.stderr });

  const opsNoPassword = await lab.ssh(host.name, 'sudo -n true', { user: 'ops' });
  t.equal(opsNoPassword.code, 1, 'sudo -n as ops needs a password');
  const ops = await lab.ssh(host.name, "sudo -S -p '' id -u", { user: 'ops', input: `${OPS_PASSWORD}\n` });
  t.same([ops.code, ops.stdout], [0, '0\n'], 'sudo -S as ops with its password', { stderr: ops.stderr });
});

t.test('stop cuts a host off, start brings it back with its disk', async (t) => {
  const host = lab.hosts.at(-1);
  if (!host) throw new Error('the lab has no hosts');
  t.equal((await lab.ssh(host.name, 'echo kept > /root/marker')).code, 0);

  await lab.stop(host.name);
  t.equal(await lab.isRunning(host.name), false, 'its container is gone');
  const off = await lab.ssh(host.name, 'true');
  t.equal(off.code, 255, 'ssh fails');
  t.match(off.stderr, /timed out|No route to host/, 'the address no longer answers at all');
  t.equal((await lab.ssh('lab1', 'true')).code, 0, 'the other hosts stay up');

  await lab.start(host.name);
  t.equal(await lab.isRunning(host.name), true);
  const back = await lab.ssh(host.name, 'cat /root/marker');
  t.equal(back.stdout, 'kept\n', 'the file written before the stop is still there');
});

t.test('the inventory module points at the hosts and the repo lib', async (t) => {
  const source = await readFile(lab.inventoryFile, 'utf8');
  const specifier = /from "([^"]+)"/.exec(source)?.[1] ?? '';
  t.equal(resolve(dirname(lab.inventoryFile), specifier), fileURLToPath(new URL('../../lib/index.ts', import.meta.url)));
  const inventory = ((await import(lab.inventoryFile)) as { default: Inventory }).default;
  for (const host of lab.hosts) {
    t.match(inventory.hosts.get(host.name), { spec: { address: host.address, user: 'root', privateKeyPath: lab.privateKeyPath }, groups: ['lab'] }, `${host.name} as the lab runs it`);
  }
});

t.test('down removes everything the lab created, and may be repeated', async (t) => {
  const small = await startLab({ hosts: 1, name: 'gone' });
  const tmpDir = dirname(small.privateKeyPath);
  const [host] = small.hosts;
  if (!host) throw new Error('the lab has no hosts');
  await small.down();
  await small.down();

  t.equal(existsSync(join(STATE_ROOT, String(small.index))), false, 'its state dir');
  t.equal(existsSync(tmpDir), false, 'its temp dir (keys, overlays)');
  t.same(await mountsUnder(tmpDir), [], 'its overlay mounts');
  t.equal(existsSync(`/run/netns/tkl-${small.index}-${host.name}`), false, 'its network namespace');
  t.equal(existsSync(`/sys/class/net/tkl-${small.index}-br`), false, 'its bridge');
  // Not probed over the network: without the bridge, 10.200.x.x would be routed out of the machine.
});
