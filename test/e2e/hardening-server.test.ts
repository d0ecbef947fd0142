// Host basics and the firewall's refusal, on a fresh lab host of their own (in parallel with
// hardening.test.ts): host name and time zone planned and applied through the CLI, a swap file as
// far as a container allows, and `ufw.enabled` refusing to cut SSH off. Assertions read the host.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { withLab } from '../../lab/lab.ts';
import { ufw } from '../../lib/ops/ufw.ts';
import { changedSteps, labInventory, runTaskCli, plannedSteps } from './support/cli.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const lab = await withLab(t, 1);
const dir = await mkdtemp(join(tmpdir(), 'tackle-host-'));
const inventory = await labInventory(lab);
const lib = (path: string) => JSON.stringify(join(ROOT, path));

/** Writes a task file whose body is `body` (with `server`, `ufw` and `apt` in scope). */
async function taskFile(name: string, body: string): Promise<string> {
  const file = join(dir, `${name}.mts`);
  await writeFile(
    file,
    `import { apt, defineTask, isMain, runCli } from ${lib('lib/index.ts')};
import { server } from ${lib('lib/ops/server.ts')};
import { ufw } from ${lib('lib/ops/ufw.ts')};
void apt; void ufw; void server;
const task = defineTask({ name: ${JSON.stringify(name)}, async run(host) { ${body} } });
if (isMain(import.meta.url, process.argv)) process.exitCode = await runCli(task, { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr });
`,
  );
  return file;
}

t.test('host name and time zone: dry-run predicts, the real run applies, a second run changes nothing', async (t) => {
  const file = await taskFile(
    'basics',
    `await host.run(server.hostname({ name: 'web1.example.test' }));
     await host.run(server.timezone({ name: 'Europe/Berlin' }));`,
  );
  const dry = await runTaskCli(file, ['--inventory', inventory, '--dry-run']);
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout.slice(-2000) });
  t.equal((await lab.ssh('lab1', 'hostname; cat /etc/timezone')).stdout, 'lab1\nEtc/UTC\n', 'the dry run changed nothing');
  const real = await runTaskCli(file, ['--inventory', inventory]);
  t.equal(real.code, 0, 'real run', { stdout: real.stdout.slice(-2000) });
  t.same(changedSteps(real.report), { lab1: ['server.hostname web1.example.test', 'server.timezone Europe/Berlin'] });
  t.same(plannedSteps(real.report), plannedSteps(dry.report), 'predicted exactly');

  const facts = await lab.ssh('lab1', 'hostname; cat /etc/hostname; grep ^127.0.1.1 /etc/hosts; getent ahostsv4 web1 | head -n 1 | cut -d" " -f1; readlink /etc/localtime; cat /etc/timezone; env -u TZ date -d @1751328000 +%H:%M%z');
  t.equal(facts.stdout, 'web1.example.test\nweb1.example.test\n127.0.1.1\tweb1.example.test web1\n127.0.1.1\n/usr/share/zoneinfo/Europe/Berlin\nEurope/Berlin\n02:00+0200\n');
  t.equal((await lab.ssh('lab1', 'sudo -n true 2>&1', { user: 'admin' })).stdout, '', 'sudo resolves the new name (no "unable to resolve host")');

  const again = await runTaskCli(file, ['--inventory', inventory]);
  t.same(changedSteps(again.report), { lab1: [] }, 'second run: nothing changed');
});

t.test('an unknown time zone is refused at planning time, and nothing changes', async (t) => {
  const file = await taskFile('badzone', `await host.run(server.timezone({ name: 'Mars/Olympus_Mons' }));`);
  const r = await runTaskCli(file, ['--inventory', inventory]);
  t.equal(r.code, 2);
  t.match(r.report?.hosts[0]?.steps[0], { name: 'server.timezone Mars/Olympus_Mons', status: 'failed', error: { phase: 'operation', reason: 'unknown time zone Mars/Olympus_Mons: there is no /usr/share/zoneinfo/Mars/Olympus_Mons on the host' } });
  t.equal((await lab.ssh('lab1', 'cat /etc/timezone')).stdout, 'Europe/Berlin\n');
});

t.test('swap file: made, signed and in fstab; swapon is refused inside the lab container', async (t) => {
  // systemd-nspawn filters swapon(2): only a real (or VM) host can activate swap. Everything before
  // that is checked here; the step then fails with the kernel's own reason, as it should.
  const file = await taskFile('swap', `await host.run(server.swapfile({ sizeMb: 16, swappiness: 10 }));`);
  const dry = await runTaskCli(file, ['--inventory', inventory, '--dry-run']);
  t.same(changedSteps(dry.report), { lab1: ['server.swapfile /swapfile'] });
  const r = await runTaskCli(file, ['--inventory', inventory]);
  t.equal(r.code, 2);
  t.match(r.report?.hosts[0]?.steps[0]?.error, { phase: 'command', command: 'swapon /swapfile', stderrTail: /swapon failed: Operation not permitted/ });
  const facts = await lab.ssh('lab1', 'stat -c "%s %a %U" /swapfile; blkid -p -o value -s TYPE /swapfile; grep swapfile /etc/fstab; cat /etc/sysctl.d/60-tackle-swappiness.conf');
  t.equal(facts.stdout, `${16 * 1048576} 600 root\nswap\n/swapfile none swap sw 0 0\n# Managed by tackle (server.swapfile).\nvm.swappiness = 10\n`);
  const again = await runTaskCli(file, ['--inventory', inventory]);
  t.match(again.report?.hosts[0]?.steps[0]?.error, { command: 'swapon /swapfile' }, 'the second run only has swapon left to do');
});

t.test('enabling ufw without the SSH port allowed is refused, and the host stays reachable', async (t) => {
  const file = await taskFile(
    'firewall',
    `await host.run(apt.packages({ names: ['ufw'] }));
     await host.run(ufw.rules({ purge: true, rules: [{ action: 'allow', port: 80, proto: 'tcp' }] }));
     await host.run(ufw.enabled({ enabled: true }));`,
  );
  const r = await runTaskCli(file, ['--inventory', inventory]);
  t.equal(r.code, 2, 'the host failed', { stdout: r.stdout.slice(-2000) });
  const steps = r.report?.hosts[0]?.steps ?? [];
  t.same(steps.map((s) => [s.name, s.status]), [
    ['apt.packages ufw', 'changed'],
    ['ufw.rules (exactly)', 'changed'],
    ['ufw.enabled', 'failed'],
  ]);
  t.match(steps[2]?.error, {
    phase: 'operation',
    host: 'lab1',
    reason: new RegExp(`^ufw\\.enabled: refusing to enable ufw: no rule would allow SSH port 22/tcp from anywhere or from ${lab.bridgeAddress.replace(/\./g, '\\.')} \\(the address tackle connects from\\)`),
  });
  t.match(r.stdout, /lab1 failed:[\s\S]*refusing to enable ufw/);
  t.equal((await lab.ssh('lab1', 'ufw status')).stdout, 'Status: inactive\n', 'ufw stays off');
  t.equal((await lab.ssh('lab1', 'echo reachable')).stdout, 'reachable\n');

  // The same test as the host-side guard planned on a host without ufw, run by the host's own awk.
  const session = { kind: 'ssh', clientAddress: lab.bridgeAddress, clientPort: 1, serverAddress: lab.host('lab1').address, serverPort: 22 } as const;
  const guard = ufw.enabled({}).plan({ ufw: { kind: 'missing' }, session, hook: { kind: 'missing' } });
  const command = guard?.actions[0]?.command.reveal() ?? 'false';
  const refused = await lab.ssh('lab1', command);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /tackle: refusing to enable ufw: no rule allows SSH port 22\/tcp/);
  await lab.ssh('lab1', `ufw allow proto tcp from ${lab.bridgeAddress} to any port 22`);
  t.equal((await lab.ssh('lab1', command)).code, 0, 'the guard passes once the controller may connect');
});
