// Each core operation's other modes on a real host: absent/latest packages, backups, owners and
// modes, line removal, group membership, stopping and disabling a unit, shell guards. Each task is
// run for real and then again, and the second run must change nothing.
import t, { type Test } from 'tap';
import { openConnection } from '../../lib/connection/open.ts';
import { runTask, type RunResult } from '../../lib/engine/runner.ts';
import { defineTask, type Task } from '../../lib/engine/task.ts';
import { defineInventory } from '../../lib/inventory/inventory.ts';
import { apt, files, sh, shell, systemd, users } from '../../lib/index.ts';
import { withLab } from '../../lab/lab.ts';

const lab = await withLab(t, 1);
const host = lab.hosts[0];
if (!host) throw new Error('no lab host');
const inventory = defineInventory({ hosts: { [host.name]: { address: host.address, privateKeyPath: lab.privateKeyPath, knownHostsPath: lab.knownHostsPath } } });
const ctx = { home: '/root', localUser: 'root' };
const runOn = (task: Task, dryRun = false): Promise<RunResult> =>
  runTask(task, [...inventory.hosts.values()], { dryRun, connect: (h) => openConnection(h, inventory, ctx) });
const statuses = (r: RunResult) => r.hosts[0]?.steps.map((s) => `${s.status} ${s.name}`);
const sshOut = async (cmd: string) => (await lab.ssh(host.name, cmd)).stdout;

/** Runs `task` dry, then for real twice; `unknown` names the steps the dry-run can only report unknown (guards after a change). */
async function twice(t: Test, task: Task, unknown: readonly string[] = []): Promise<RunResult> {
  const dry = await runOn(task, true);
  const first = await runOn(task);
  t.equal(first.hosts[0]?.status, 'changed', 'first run changed', { steps: first.hosts[0]?.steps });
  const expected = first.hosts[0]?.steps.map((s) => `${unknown.includes(s.name) ? 'unknown' : s.status} ${s.name}`);
  t.same(statuses(dry), expected, 'the dry-run predicted the first run');
  const second = await runOn(task);
  t.same(second.hosts[0]?.steps.filter((s) => s.status !== 'ok').map((s) => s.name), [], 'second run: all ok');
  return first;
}

t.test('apt: install then remove and purge; latest', async (t) => {
  await twice(t, defineTask({ name: 'pkgs', run: async (h) => void (await h.run(apt.packages({ names: ['tree', 'jq'], state: 'latest' }))) }));
  t.match(await sshOut("dpkg-query -W -f='${Status}\\n' tree jq"), /install ok installed\ninstall ok installed/);
  await twice(t, defineTask({ name: 'rm', run: async (h) => void (await h.run(apt.packages({ names: ['jq'], state: 'absent', purge: true }))) }));
  t.equal(await sshOut("dpkg-query -W -f='${Status}' jq 2>/dev/null || echo gone"), 'gone\n');
});

t.test('files: owner, group, mode, backup, line replace and removal, link retarget, directory removal', async (t) => {
  await lab.ssh(host.name, 'printf "a=1\\nb=2\\n" > /etc/opsdemo.conf; printf "a=1\\nc=3\\nx\\n" > /etc/opsdemo-lines.conf');
  const task = defineTask({
    name: 'files',
    async run(h) {
      await h.run(users.user({ name: 'svc', system: true, shell: '/usr/sbin/nologin', createHome: false }));
      await h.run(files.file({ path: '/etc/opsdemo.conf', content: 'a=1\nb=3\n', owner: 'svc', group: 'svc', mode: '0640', backup: true }));
      await h.run(files.line({ path: '/etc/opsdemo-lines.conf', line: 'c=4', match: '^c=' }));
      await h.run(files.line({ path: '/etc/opsdemo-lines.conf', match: '^a=', state: 'absent' }));
      await h.run(files.directory({ path: '/srv/r1' }));
      await h.run(files.directory({ path: '/srv/r2' }));
      await h.run(files.link({ path: '/srv/cur', target: '/srv/r2' }));
      await h.run(files.directory({ path: '/srv/gone', state: 'absent', recursive: true }));
    },
  });
  await lab.ssh(host.name, 'mkdir -p /srv/gone/sub && touch /srv/gone/sub/x && ln -s /srv/r1 /srv/cur');
  await twice(t, task);
  t.equal(await sshOut('cat /etc/opsdemo.conf; stat -c "%U %G %a" /etc/opsdemo.conf'), 'a=1\nb=3\nsvc svc 640\n');
  t.equal(await sshOut('cat /etc/opsdemo-lines.conf'), 'c=4\nx\n', 'c= replaced in place, a= removed');
  t.equal(await sshOut('cat /etc/opsdemo.conf.*~'), 'a=1\nb=2\n', 'the previous version was backed up');
  t.equal(await sshOut('readlink /srv/cur; test -e /srv/gone || echo removed'), '/srv/r2\nremoved\n');
});

t.test('users: groups appended, shell changed; authorized keys exclusive', async (t) => {
  await lab.ssh(host.name, 'useradd -m -s /bin/sh alice && usermod -aG users alice');
  await twice(
    t,
    defineTask({
      name: 'users',
      async run(h) {
        await h.run(users.user({ name: 'alice', shell: '/bin/bash', groups: ['sudo'] }));
        await h.run(users.authorizedKeys({ user: 'alice', keys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHqZ0Yv2cXK1eTzFQ7k2xJ1w8G8T2E7Yb2cS2ZyQ9vXy alice@laptop'], exclusive: true }));
      },
    }),
  );
  t.equal(await sshOut('getent passwd alice | cut -d: -f7; id -Gn alice | tr " " "\\n" | sort | tr "\\n" " "'), '/bin/bash\nalice sudo users ', 'sudo added, users kept');
  t.match(await sshOut('stat -c "%a %U" /home/alice/.ssh /home/alice/.ssh/authorized_keys; cat /home/alice/.ssh/authorized_keys'), /^700 alice\n600 alice\nssh-ed25519 AAAAC3Nz\S+ alice@laptop\n$/);
});

t.test('systemd: stop and disable a unit; shell guards', async (t) => {
  await lab.ssh(host.name, 'printf "[Service]\\nExecStart=/bin/sleep infinity\\n[Install]\\nWantedBy=multi-user.target\\n" > /etc/systemd/system/sleeper.service && systemctl daemon-reload && systemctl enable --now sleeper');
  await twice(
    t,
    defineTask({
      name: 'units',
      async run(h) {
        await h.run(systemd.service({ name: 'sleeper', state: 'stopped', enabled: false }));
        await h.run(shell({ name: 'mark once', command: sh`touch /root/marked`, unless: sh`test -e /root/marked` }));
        await h.run(shell({ name: 'only if root has a home', command: sh`touch /root/stopped-seen`, onlyIf: sh`test -d /root`, creates: '/root/stopped-seen' }));
      },
    }),
    // A guard command may answer differently after any change: planned after one, it is unknown, never guessed.
    ['shell mark once', 'shell only if root has a home'],
  );
  t.equal(await sshOut('systemctl is-active sleeper; systemctl is-enabled sleeper; ls /root/marked /root/stopped-seen'), 'inactive\ndisabled\n/root/marked\n/root/stopped-seen\n');
});
