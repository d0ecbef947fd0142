// The core engine end to end: tasks/baseline.ts (every core operation) run through the CLI
// against three fresh lab hosts in parallel, one as root, one through sudo -n, one through sudo
// with a password from the environment. Every assertion reads the hosts themselves.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import t from 'tap';
import { OPS_PASSWORD, withLab } from '../../lab/lab.ts';
import { poll, run } from '../../lab/exec.ts';
import { changedSteps, labInventory, runTaskCli, plannedSteps } from './support/cli.ts';

const lab = await withLab(t, 3);
const pubKey = (await readFile(`${lab.privateKeyPath}.pub`, 'utf8')).trim();
const vars = { deployKeys: [pubKey] };
const inventory = await labInventory(
  lab,
  {
    lab1: { vars },
    lab2: { user: 'admin', become: true, vars },
    lab3: { user: 'ops', vars },
  },
  // lab3's sudo password comes from the environment through the typed loader, as a secret.
  `const env = loadEnv({ SUDO_PASSWORD: { secret: true } }, { env: process.env });`,
);
// The inventory module cannot hold a Secret as JSON: patch lab3's become in after writing it.
await writeFile(inventory, (await readFile(inventory, 'utf8')).replace(/("user": "ops",)/, '$1 "become": { "password": env.SUDO_PASSWORD },'));
const env = { SUDO_PASSWORD: OPS_PASSWORD };
const names = lab.hosts.map((h) => h.name);

const onHosts = (command: string) => Promise.all(names.map((n) => lab.ssh(n, command)));

t.test('dry-run on fresh hosts changes nothing and predicts the real run exactly; second run changes nothing', async (t) => {
  const dry = await runTaskCli('tasks/baseline.ts', ['--inventory', inventory, '--dry-run'], env);
  t.equal(dry.code, 0, 'dry-run exit code', { stdout: dry.stdout, stderr: dry.stderr });
  t.equal(dry.report?.dryRun, true);
  for (const r of await onHosts('test -e /srv/demo || id deploy || dpkg -s tree; echo $?')) t.match(r.stdout, /1\n$/, 'nothing of the plan exists after the dry-run');
  t.notOk(dry.stdout.includes(OPS_PASSWORD), 'the sudo password is never printed');
  t.match(dry.stdout, /would change/);

  const real = await runTaskCli('tasks/baseline.ts', ['--inventory', inventory], env);
  t.equal(real.code, 0, 'real run exit code', { stdout: real.stdout.slice(-3000), stderr: real.stderr });
  t.same(real.report?.summary, { ok: 0, changed: 3, failed: 0, unreachable: 0, skipped: 0 });
  t.same(plannedSteps(real.report), plannedSteps(dry.report), 'the dry-run listed exactly the steps the real run changed');
  t.ok((changedSteps(real.report).lab1 ?? []).length >= 10);

  // Outcomes on the hosts.
  for (const h of lab.hosts) {
    // The unit was just started: its server may take a moment to listen on a busy machine.
    const want = `<h1>${h.name}</h1>\n`;
    const fetchPage = async () => (await run('curl', ['-s', '--max-time', '5', `http://${h.address}:8080/`])).stdout;
    const page = await poll(async () => ((await fetchPage()) === want ? want : undefined), { timeoutMs: 10_000, intervalMs: 200, onTimeout: async () => new Error(`${h.name} serves ${JSON.stringify(await fetchPage())}`) }).catch((e: Error) => e.message);
    t.equal(page, want, `${h.name} serves its page from the demo unit`);
    const facts = await lab.ssh(h.name, "dpkg-query -W -f='${Status}' tree; echo; readlink /srv/demo/current; cat /etc/default/demo; systemctl is-enabled demo; test -s /srv/demo/provisioned-at && echo stamped");
    t.equal(facts.stdout, 'install ok installed\n/srv/demo/releases/1\nPORT=8080\nenabled\nstamped\n');
    const asDeploy = await lab.ssh(h.name, 'id -un; echo $SHELL', { user: 'deploy' });
    t.equal(asDeploy.stdout, 'deploy\n/bin/bash\n', `${h.name}: key login as deploy works`);
  }

  const again = await runTaskCli('tasks/baseline.ts', ['--inventory', inventory], env);
  t.equal(again.code, 0);
  t.same(changedSteps(again.report), Object.fromEntries(names.map((n) => [n, []])), 'second run: 0 changed steps on every host');
  t.same(again.report?.summary, { ok: 3, changed: 0, failed: 0, unreachable: 0, skipped: 0 });
  t.match(again.stdout, /RECAP baseline/);
});

t.test('a file whose validate fails leaves the old file in place and the step failed', async (t) => {
  await lab.ssh('lab1', "sed -i 's/^ExecStart=/#ExecStart=/' /etc/systemd/system/demo.service");
  const before = (await lab.ssh('lab1', 'cat /etc/systemd/system/demo.service')).stdout;
  // The task writes a unit with ExecStart: this run must repair it. Now break the task's input
  // instead: an inventory var cannot reach the unit text, so validate against a file we control.
  const task = join(await mkdtemp(join(tmpdir(), 'tackle-task-')), 'validate.mts');
  await writeFile(
    task,
    `import { defineTask, files, isMain, runCli } from ${JSON.stringify(join(process.cwd(), 'lib/index.ts'))};
const task = defineTask({ name: 'validate', async run(host) {
  await host.run(files.file({ path: '/etc/systemd/system/demo.service', content: '[Service]\\nNoExecStart=1\\n', validate: 'grep -q "^ExecStart=" %s' }));
  await host.run(files.file({ path: '/tmp/after-validate', content: 'x' }));
} });
if (isMain(import.meta.url, process.argv)) process.exitCode = await runCli(task, { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr });
`,
  );
  const r = await runTaskCli(task, ['--inventory', inventory, '--limit', 'lab1'], env);
  t.equal(r.code, 2, 'a failed host makes exit code 2');
  const step = r.report?.hosts[0]?.steps[0];
  t.equal(step?.status, 'failed');
  t.match(step?.error, { phase: 'command', host: 'lab1', step: 'files.file /etc/systemd/system/demo.service' });
  t.equal((await lab.ssh('lab1', 'cat /etc/systemd/system/demo.service')).stdout, before, 'old file untouched');
  t.equal((await lab.ssh('lab1', 'ls -A /etc/systemd/system | grep -c tackle || true')).stdout.trim(), '0', 'no temp file left');
  t.equal((await lab.ssh('lab1', 'test -e /tmp/after-validate; echo $?')).stdout.trim(), '1', 'no step after the failure');
  t.match(r.stdout, /lab1 failed:/);
});

t.test('a stopped host is unreachable, the others succeed, exit code 2', async (t) => {
  await lab.stop('lab3');
  t.teardown(() => lab.start('lab3'));
  const r = await runTaskCli('tasks/baseline.ts', ['--inventory', inventory], env);
  t.equal(r.code, 2);
  const status = Object.fromEntries((r.report?.hosts ?? []).map((h) => [h.name, h.status]));
  t.same(status, { lab1: 'changed', lab2: 'ok', lab3: 'unreachable' }, 'lab1 repaired its unit; lab3 is unreachable');
  t.match(r.report?.hosts[2]?.error, { phase: 'connect', host: 'lab3', reason: /no SSH answer from 10\.200\.\d+\.13:22/ });
  t.same(r.report?.summary, { ok: 1, changed: 1, failed: 0, unreachable: 1, skipped: 0 });
  t.match(r.stdout, /lab3\s+unreachable/);
});

t.test('host keys: unknown refused without --accept-new-host-keys, recorded with it; a wrong key names the host', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tackle-keys-'));
  const known = join(dir, 'known_hosts');
  await writeFile(known, '');
  const inv = await labInventory(lab, { lab1: { knownHostsPath: known } });
  const refused = await runTaskCli('tasks/baseline.ts', ['--inventory', inv, '--limit', 'lab1', '--dry-run']);
  t.equal(refused.code, 2);
  t.match(refused.report?.hosts[0], { status: 'unreachable', error: { host: 'lab1', reason: /host key of .* is unknown \(SHA256:/ } });
  const accepted = await runTaskCli('tasks/baseline.ts', ['--inventory', inv, '--limit', 'lab1', '--dry-run', '--accept-new-host-keys']);
  t.equal(accepted.code, 0, 'accepted', { stdout: accepted.stdout.slice(-2000) });
  t.match(await readFile(known, 'utf8'), /^10\.200\.\d+\.11 ssh-ed25519 /);

  const other = join(dir, 'other');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
  const wrong = await runTaskCli('tasks/baseline.ts', ['--inventory', await labInventory(lab, { lab2: { privateKeyPath: other } }), '--limit', 'lab2', '--dry-run']);
  t.equal(wrong.code, 2);
  t.match(wrong.report?.hosts[0]?.error, { host: 'lab2', reason: /authentication as root failed/ });
  t.match(wrong.stdout, /lab2 unreachable:[\s\S]*authentication as root failed/);
});

t.test('errors before contacting any host: exit 1', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tackle-bad-'));
  const bad = join(dir, 'inventory.ts');
  await writeFile(bad, `import { defineInventory } from ${JSON.stringify(join(process.cwd(), 'lib/index.ts'))};\nexport default defineInventory({ hosts: { a: { address: '', port: 99999, groups: ['nope'] } } });\n`);
  const r = await runTaskCli('tasks/baseline.ts', ['--inventory', bad]);
  t.equal(r.code, 1);
  t.match(r.stderr, /host a: address is empty[\s\S]*host a: port 99999[\s\S]*unknown group "nope"/);
  t.equal(r.report, undefined, 'no report: nothing ran');
  const limit = await runTaskCli('tasks/baseline.ts', ['--inventory', inventory, '--limit', 'nosuch'], env);
  t.equal(limit.code, 1);
  t.match(limit.stderr, /--limit "nosuch" matches no host or group/);
  const mistyped = await runTaskCli('tasks/baseline.ts', ['--inventory', await labInventory(lab, { lab1: { vars: { demoPort: 'eighty' } } })]);
  t.equal(mistyped.code, 1);
  t.match(mistyped.stderr, /host lab1: var demoPort must be a port number/);
  const usage = await runTaskCli('tasks/baseline.ts', ['--frobnicate']);
  t.equal(usage.code, 1);
});
