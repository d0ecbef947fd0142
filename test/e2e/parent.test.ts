// Hosts reached through a parent: nested roots on a lab host, entered with a wrapper command
// (`chroot DIR`) and through a `docker` stand-in (`docker exec -i NAME …` over a chroot). The same
// file operations run inside them unchanged, file transfers included; every outcome is read on
// the parent with OpenSSH, and read back through tackle's own wrapped connection.
import { Buffer } from 'node:buffer';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { openConnection, sh, type Inventory } from '../../lib/index.ts';
import { nestedRootScript } from '../../lab/isolated.ts';
import { withLab } from '../../lab/lab.ts';
import { changedSteps, runTaskCli, plannedSteps } from './support/cli.ts';
import { INSIDE_CONF, insideScenario } from './support/inside.ts';

const lab = await withLab(t, 1);
const DOCKER = `#!/bin/sh
[ "$1" = exec ] && [ "$2" = -i ] || { echo "usage: docker exec -i NAME COMMAND" >&2; exit 125; }
name=$3; shift 3
[ -d "/srv/containers/$name/usr/bin" ] || { echo "Error response from daemon: No such container: $name" >&2; exit 1; }
exec chroot "/srv/containers/$name" "$@"
`;
const setup = await lab.ssh('lab1', `${nestedRootScript('/srv/nested')}\n${nestedRootScript('/srv/containers/web')}\ncat > /usr/local/bin/docker && chmod 755 /usr/local/bin/docker`, { input: DOCKER });
if (setup.code !== 0) throw new Error(`setting up the nested roots failed: ${setup.stderr}`);

const CONF = INSIDE_CONF;
const { inventoryFile, task, steps: STEPS } = await insideScenario(
  lab,
  { nested: { host: 'lab1', via: { wrap: ['chroot', '/srv/nested'] } }, web: { host: 'lab1', via: 'docker', id: 'web' }, ghost: { host: 'lab1', via: 'docker', id: 'ghost' } },
  { link: true },
);

t.test('operations run unchanged inside a chroot and a docker container: dry-run, run, run again', async (t) => {
  const args = ['--inventory', inventoryFile, '--limit', 'nested,web'];
  const dry = await runTaskCli(task, [...args, '--dry-run']);
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout.slice(-2000), stderr: dry.stderr });
  const real = await runTaskCli(task, args);
  t.equal(real.code, 0, 'real run', { stdout: real.stdout.slice(-3000), stderr: real.stderr });
  t.same(changedSteps(real.report), { nested: STEPS, web: STEPS });
  t.same(plannedSteps(dry.report), plannedSteps(real.report), 'the dry-run predicted it');
  for (const [name, root] of [['nested', '/srv/nested'], ['web', '/srv/containers/web']] as const) {
    const r = await lab.ssh('lab1', `cd ${root}/etc/app && cat app.conf extra && readlink current && stat -c '%a' . app.conf && test -s stamp && echo stamped`);
    t.equal(r.stdout, `${CONF}who=${name}\n/etc/app/app.conf\n750\n640\nstamped\n`, `${name}: everything is inside ${root}`);
  }
  t.equal((await lab.ssh('lab1', 'test -e /etc/app; echo $?')).stdout, '1\n', 'nothing landed on the parent itself');
  const again = await runTaskCli(task, args);
  t.equal(again.code, 0);
  t.same(changedSteps(again.report), { nested: [], web: [] }, 'second run: nothing changed');
});

t.test("files in and back through tackle's wrapped connection", async (t) => {
  const inventory = (await import(pathToFileURL(inventoryFile).href)).default as Inventory;
  const conn = await openConnection(inventory.hosts.get('nested') as never, inventory, { home: '/root', localUser: 'root' });
  t.teardown(() => conn.close());
  t.equal((await conn.get('/etc/app/app.conf')).toString(), CONF);
  const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  await conn.put('/tmp/blob', bytes, { mode: '0600' });
  const onParent = await lab.ssh('lab1', "base64 -w0 /srv/nested/tmp/blob; echo; stat -c '%a' /srv/nested/tmp/blob");
  t.equal(onParent.stdout, `${bytes.toString('base64')}\n600\n`, 'every byte arrived, inside the nested root');
  t.same(await conn.get('/tmp/blob'), bytes);
  t.equal((await conn.exec(sh`ls /etc`)).stdout, 'app\ngroup\npasswd\n', "a root of its own: the parent's /etc is not in there");
});

t.test('a container that is not there is unreachable, the others are not affected', async (t) => {
  const r = await runTaskCli(task, ['--inventory', inventoryFile, '--limit', 'ghost,web']);
  t.equal(r.code, 2);
  const ghost = r.report?.hosts.find((x) => x.name === 'ghost');
  t.match(ghost, { status: 'unreachable', error: { phase: 'connect', host: 'ghost', reason: 'cannot enter container (docker ghost) on lab1: exit code 1', stderrTail: 'Error response from daemon: No such container: ghost' } });
  t.equal(r.report?.hosts.find((x) => x.name === 'web')?.status, 'ok');
});
