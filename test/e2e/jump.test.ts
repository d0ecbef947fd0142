// A host this machine cannot reach, provisioned through a bastion: lab2's network is cut off the
// lab bridge and linked to lab1 alone (lab/isolated.ts). tasks/baseline.ts runs on lab2 with
// `jump: 'lab1'`; every outcome is read on lab2 through lab1 with OpenSSH, not with tackle. Then a
// "Proxmox" container on lab2 (a fake `pct` over a chroot) is reached through the same bastion.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { run } from '../../lab/exec.ts';
import { isolateBehind, nestedRootScript, sshArgsVia } from '../../lab/isolated.ts';
import { withLab } from '../../lab/lab.ts';
import { changedSteps, labInventory, runTaskCli, plannedSteps } from './support/cli.ts';

const lab = await withLab(t, 2);
const isolation = await isolateBehind(lab, 'lab2', 'lab1');
t.teardown(() => isolation.undo());
const viaBastion = (command: string, input?: string) => run('ssh', [...sshArgsVia(lab, 'lab2', 'lab1'), '--', command], input === undefined ? {} : { input });

// A Proxmox stand-in on lab2: `pct exec VMID -- CMD…` runs CMD in the root /srv/ct/VMID.
const PCT = `#!/bin/sh
[ "$1" = exec ] && [ "$3" = -- ] || { echo "usage: pct exec VMID -- COMMAND" >&2; exit 2; }
vmid=$2; shift 3
[ -d "/srv/ct/$vmid/usr/bin" ] || { echo "CT $vmid does not exist" >&2; exit 2; }
exec chroot "/srv/ct/$vmid" "$@"
`;
const inventory = await labInventory(lab, { lab2: { jump: 'lab1' } });

t.test('the host is not reachable from here, only through the bastion', async (t) => {
  t.equal((await lab.ssh('lab2', 'true')).code, 255, 'direct ssh fails');
  const via = await viaBastion('hostname');
  t.equal(via.stdout, 'lab2\n', 'through lab1 it answers');
});

t.test('tasks/baseline.ts provisions the host through the bastion; a second run changes nothing', async (t) => {
  // Packages already in the image: the host has no way to a mirror.
  const args = ['--inventory', inventory, '--limit', 'lab2', '--var', 'packages=["sudo","openssh-server"]'];
  const dry = await runTaskCli('tasks/baseline.ts', [...args, '--dry-run']);
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout.slice(-2000), stderr: dry.stderr });
  const real = await runTaskCli('tasks/baseline.ts', args);
  t.equal(real.code, 0, 'real run', { stdout: real.stdout.slice(-3000), stderr: real.stderr });
  t.same(plannedSteps(real.report), plannedSteps(dry.report), 'the dry-run predicted the run');
  t.ok((changedSteps(real.report).lab2 ?? []).length >= 8);
  const facts = await viaBastion('cat /srv/demo/current/index.html; cat /etc/default/demo; systemctl is-active demo; id -un deploy; curl -s --max-time 5 http://127.0.0.1:8080/');
  t.equal(facts.stdout, '<h1>lab2</h1>\nPORT=8080\nactive\ndeploy\n<h1>lab2</h1>\n', 'read on lab2 through lab1');
  const again = await runTaskCli('tasks/baseline.ts', args);
  t.same(changedSteps(again.report), { lab2: [] });
});

t.test('a Proxmox container on the hidden host: pct exec through the bastion, files written inside it', async (t) => {
  const setup = await viaBastion(`${nestedRootScript('/srv/ct/101')}\ncat > /usr/local/sbin/pct && chmod 755 /usr/local/sbin/pct`, PCT);
  t.equal(setup.code, 0, setup.stderr);
  const dir = await mkdtemp(join(tmpdir(), 'tackle-jump-'));
  const inv = join(dir, 'inventory.ts');
  await writeFile(
    inv,
    `import base from ${JSON.stringify(inventory)};
import { defineInventory } from ${JSON.stringify(resolve('lib/index.ts'))};
const hosts = Object.fromEntries([...base.hosts.values()].map((h) => [h.name, h.spec]));
export default defineInventory({ groups: { lab: {} }, hosts: { ...hosts, ct101: { parent: { host: 'lab2', via: 'pct', id: '101' } } } });
`,
  );
  const task = join(dir, 'ct.mts');
  await writeFile(
    task,
    `import { defineTask, files, isMain, runCli } from ${JSON.stringify(resolve('lib/index.ts'))};
const task = defineTask({ name: 'ct', async run(host) {
  await host.run(files.directory({ path: '/etc/app', mode: '0750' }));
  await host.run(files.file({ path: '/etc/app/app.conf', content: "name = 'ct101'\\nport = 8080\\n", mode: '0640' }));
} });
if (isMain(import.meta.url, process.argv)) process.exitCode = await runCli(task, { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr });
`,
  );
  const r = await runTaskCli(task, ['--inventory', inv, '--limit', 'ct101']);
  t.equal(r.code, 0, 'run in the container', { stdout: r.stdout.slice(-3000), stderr: r.stderr });
  t.same(changedSteps(r.report), { ct101: ['files.directory /etc/app', 'files.file /etc/app/app.conf'] });
  const onHost = await viaBastion("cat /srv/ct/101/etc/app/app.conf; stat -c '%a %U' /srv/ct/101/etc/app/app.conf /srv/ct/101/etc/app; test -e /etc/app; echo $?");
  t.equal(onHost.stdout, "name = 'ct101'\nport = 8080\n640 root\n750 root\n1\n", 'written inside the container root, not on the host');
  const again = await runTaskCli(task, ['--inventory', inv, '--limit', 'ct101']);
  t.same(changedSteps(again.report), { ct101: [] });
});
