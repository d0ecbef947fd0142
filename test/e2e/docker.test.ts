// Docker on real lab hosts: Debian 12's docker.io inside an nspawn host (withLab's `docker`
// option), images imported from tarballs built on this machine (no registry). PostgreSQL runs in
// a container: the nightly backup dumps it with `docker exec` and the restore drill restores into
// it, against s3rver on the bridge; a task runs inside a busybox container through the docker
// parent wrapper; and a published PostgreSQL port that bypasses ufw is reported by health.ts, then
// closed by the DOCKER-USER guard. Every outcome is read on the hosts with OpenSSH and the docker
// CLI, or by connecting from another host.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { apt, defineTask, openConnection, runTask, systemd, type Inventory } from '../../lib/index.ts';
import { ensureBusyboxImage, ensurePostgresImage, importImages, POSTGRES_RUN } from '../../lab/docker-images.ts';
import { startS3 } from '../../lab/s3.ts';
import { withLab } from '../../lab/lab.ts';
import { changedSteps, labInventory, runTaskCli, plannedSteps, predicted } from './support/cli.ts';
import { assertBrokenRolledBack, composeApp, dockerPortChecks, tcpConnect } from './support/docker.ts';
import { INSIDE_CONF, insideScenario } from './support/inside.ts';

const started = Date.now();
const log = (line: string) => t.comment(line);
// Built once per machine and cached (see lab/docker-images.ts), meanwhile docker.io installs:
// a cold cache (PostgreSQL's about 4 min) then still fits the file in tap's 600 s.
const images = Promise.all([ensurePostgresImage({ log }), ensureBusyboxImage({ log })]);
images.catch(() => {}); // awaited below; a failure must not surface as an unhandled rejection first
const lab = await withLab(t, 2, { docker: true });
const s3 = await startS3(lab.bridgeAddress, 'backups');
t.teardown(() => s3.close());

const sh1 = async (host: string, command: string): Promise<string> => {
  const r = await lab.ssh(host, command);
  if (r.code !== 0) throw new Error(`${host}: ${command}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
};

// Docker as users install it on Debian 12: the docker.io package, through a task.
const dockerHost = defineTask({
  name: 'docker-host',
  async run(host) {
    await host.run(apt.packages({ names: ['docker.io'] }));
    await host.run(systemd.service({ name: 'docker', state: 'started', enabled: true }));
  },
});
const plainInventory = (await import(await labInventory(lab))).default as Inventory;
const setup = await runTask(dockerHost, [plainInventory.hosts.get('lab1') as never], {
  connect: (h) => openConnection(h, plainInventory, { home: homedir(), localUser: 'root', acceptNewHostKeys: false }),
});
for (const h of setup.hosts) if (h.status === 'failed' || h.status === 'unreachable') throw new Error(`docker setup failed on ${h.name}: ${h.error?.message}`);
t.comment(`docker.io installed after ${((Date.now() - started) / 1000).toFixed(1)}s`);
const [pgImage, busybox] = await images;
await importImages((command) => lab.ssh('lab1', command), [pgImage, busybox]);
t.comment(`docker host ready (docker.io installed, images imported) after ${((Date.now() - started) / 1000).toFixed(1)}s`);

const DIR = '/srv/backups';
const TABLES = { 'public.customers': 4000, 'public.orders': 9000 };
const SAMPLE = `
CREATE DATABASE app;
\\c app
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 4000) g;
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers, total numeric(10,2));
INSERT INTO orders (customer_id, total) SELECT 1 + g % 4000, g * 1.5 FROM generate_series(1, 9000) g;
`;
await sh1('lab1', `docker run -d --name pg ${POSTGRES_RUN}`);
// Ready when psql inside the container gets an answer.
await sh1('lab1', `for i in $(seq 1 100); do docker exec pg psql -XAtq -c 'SELECT 1' >/dev/null 2>&1 && exit 0; sleep 0.2; done; docker logs pg >&2; exit 1`);
await sh1('lab1', `docker exec -i pg psql -X -q -v ON_ERROR_STOP=1 <<'EOF'\n${SAMPLE}\nEOF`);

/** Exact row counts of a database in the container, counted with psql inside it. */
const counts = async (db: string) =>
  JSON.parse(await sh1('lab1', `docker exec pg psql -XAtq -d ${db} -c "SELECT json_build_object('public.customers', (SELECT count(*) FROM customers), 'public.orders', (SELECT count(*) FROM orders))"`)) as Record<string, number>;

t.test('nightly backup dumps PostgreSQL in a container with docker exec; the restore drill restores into it with equal row counts', async (t) => {
  const backup = { databases: ['app'], dir: DIR, container: 'pg', dbUser: 'postgres', remote: { name: 's3', provider: 'Other', endpoint: s3.endpoint, bucket: 'backups', retries: 1, lowLevelRetries: 1 } };
  const inventory = await labInventory(lab, { lab1: { groups: ['lab'], vars: { backup } } as never });
  const env = { BACKUP_ACCESS_KEY_ID: s3.accessKeyId, BACKUP_SECRET_ACCESS_KEY: s3.secretAccessKey };
  const args = ['--inventory', inventory, '--limit', 'lab1'];

  const dry = await runTaskCli('scripts/nightly-backup.ts', [...args, '--dry-run'], env);
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout.slice(-3000), stderr: dry.stderr });
  t.match(dry.stdout, /postgres\.dump app — dump app \(docker pg postgres@\) to \/srv\/backups\/app-\d{8}T\d{6}Z\.dump/);
  const real = await runTaskCli('scripts/nightly-backup.ts', args, env);
  t.equal(real.code, 0, 'nightly backup', { stdout: real.stdout.slice(-3000), stderr: real.stderr });
  // As on a plain host without a backup yet (see backup.test.ts).
  const fresh = [`postgres.prune ${DIR}`, 'rclone.prune s3:backups/lab1'];
  t.same(plannedSteps(real.report), predicted(dry.report, real.report, { lab1: fresh }), 'the dry-run predicted every step it could know');
  const names = (await sh1('lab1', `ls -1A ${DIR}`)).split('\n').filter(Boolean).sort();
  const dump = names.find((n) => /^app-\d{8}T\d{6}Z\.dump$/.test(n)) as string;
  t.same(names, [dump, `${dump}.sha256`], 'one dump and its checksum on the host');
  // The dump is read back by the container's own pg_restore (the host has no PostgreSQL at all).
  t.equal(await sh1('lab1', `command -v pg_restore; cd ${DIR} && sha256sum -c ${dump}.sha256 && docker exec -i pg pg_restore --list < ${dump} | grep -c 'TABLE DATA'`), `${dump}: OK\n2\n`, 'checksum holds, two tables in the archive, no pg_restore on the host');
  t.same(await s3.keys('lab1/'), [`lab1/${dump}`, `lab1/${dump}.sha256`], 'uploaded to the S3 server');

  const restored = await runTaskCli('scripts/restore.ts', [...args, '--into', 'app_copy'], env);
  t.equal(restored.code, 0, 'restore drill', { stdout: restored.stdout.slice(-3000), stderr: restored.stderr });
  t.match(restored.stdout, /lab1: app ← app-\d{8}T\d{6}Z\.dump \(local\) restored into app_copy\n[\s\S]*all 2 table\(s\) match/);
  t.same(await counts('app_copy'), TABLES, 'the restored copy in the container has every row (counted with psql in the container)');
  t.same(await counts('app'), TABLES);
});

t.test('a task runs inside a container through the docker parent wrapper; one without flock is refused with the reason', async (t) => {
  // A Debian-based container (util-linux's flock takes tackle's run lock), and a busybox one (no flock).
  await sh1('lab1', `docker run -d --name box pg:15 sleep infinity && docker run -d --name tiny ${busybox.ref} /bin/sleep 100000`);
  const { inventoryFile, task, steps: STEPS } = await insideScenario(lab, { box: { host: 'lab1', via: 'docker', id: 'box' }, tiny: { host: 'lab1', via: 'docker', id: 'tiny' } });
  const CONF = INSIDE_CONF;
  const args = ['--inventory', inventoryFile, '--limit', 'box'];
  const dry = await runTaskCli(task, [...args, '--dry-run']);
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout.slice(-2000), stderr: dry.stderr });
  const real = await runTaskCli(task, args);
  t.equal(real.code, 0, 'real run', { stdout: real.stdout.slice(-3000), stderr: real.stderr });
  t.same(changedSteps(real.report), { box: STEPS });
  t.same(plannedSteps(dry.report), plannedSteps(real.report), 'the dry-run predicted it');
  t.equal(await sh1('lab1', `docker exec box sh -c 'cd /etc/app && cat app.conf extra && stat -c %a . app.conf && test -s stamp && echo stamped'`), `${CONF}who=box\n750\n640\nstamped\n`, 'the files are inside the container, read back with docker exec');
  t.equal((await lab.ssh('lab1', 'test -e /etc/app; echo $?')).stdout, '1\n', 'nothing landed on the parent');
  const again = await runTaskCli(task, args);
  t.equal(again.code, 0, 'second run', { stdout: again.stdout.slice(-2000) });
  t.same(changedSteps(again.report), { box: [] }, 'second run: nothing changed');

  // Debian's busybox has no flock applet: the run lock cannot be taken, and the report says why.
  const tiny = await runTaskCli(task, ['--inventory', inventoryFile, '--limit', 'tiny']);
  t.equal(tiny.code, 2, 'a container without flock fails', { stdout: tiny.stdout.slice(-2000) });
  t.match(tiny.report?.hosts.find((x) => x.name === 'tiny')?.error?.reason, 'could not take the run lock /run/lock/tackle: flock is not installed on the host (util-linux)');
  t.equal((await lab.ssh('lab1', 'docker exec tiny test -e /etc/app; echo $?')).stdout, '1\n', 'and nothing was written in it');
});

t.test('a Compose deploy with docker-compose v1: health-checked, and a broken release rolled back automatically', async (t) => {
  // Debian 12 has docker-compose (v1) but no compose plugin package (docker-compose-plugin, docker-compose-v2).
  const compose = await runTask(defineTask({ name: 'compose', run: async (host) => void (await host.run(apt.packages({ names: ['docker-compose'] }))) }), [plainInventory.hosts.get('lab1') as never], {
    connect: (h) => openConnection(h, plainInventory, { home: homedir(), localUser: 'root', acceptNewHostKeys: false }),
  });
  t.equal(compose.hosts[0]?.status, 'changed', 'docker-compose installed');
  t.equal((await lab.ssh('lab1', 'docker compose version')).code === 0, false, 'no `docker compose` plugin on the host');
  const app = await composeApp(lab, 'lab1', busybox.ref);
  for (const tag of ['1', '2']) {
    const r = await app.deploy(tag);
    t.equal(r.code, 0, `release ${tag} deployed`, { stdout: r.stdout.slice(-3000), stderr: r.stderr });
    t.equal(await app.version(), tag, `release ${tag} answers`);
  }
  t.equal(await app.images(), 'app:2', 'one container, of the new image');
  await assertBrokenRolledBack(t, lab, 'lab1', app);
});

t.test('a port Docker publishes past ufw is critical in health.ts; ufw.dockerUser closes it to other hosts, not to the host', async (t) => {
  // PostgreSQL published the way a Compose file usually does it: `ports: ["5432:5432"]`.
  await sh1('lab1', `docker run -d --name pgpub -p 5432:5432 ${POSTGRES_RUN}`);
  const dir = await mkdtemp(join(tmpdir(), 'tackle-docker-fw-'));
  const task = join(dir, 'firewall.mts');
  const writeTask = (guard: boolean) =>
    writeFile(
      task,
      `import { apt, defineTask, isMain, runCli, ufw } from ${JSON.stringify(resolve('lib/index.ts'))};
const task = defineTask({ name: 'firewall', async run(host) {
  await host.run(apt.packages({ names: ['ufw'] }));
  await host.run(ufw.defaults({ incoming: 'deny', outgoing: 'allow', routed: 'deny' }));
  await host.run(ufw.rules({ rules: [{ action: 'allow', port: 22, proto: 'tcp' }], purge: true }));
  await host.run(ufw.enabled());
  ${guard ? 'await host.run(ufw.dockerUser());' : ''}
} });
if (isMain(import.meta.url, process.argv)) process.exitCode = await runCli(task, { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr });
`,
    );
  const inventory = await labInventory(lab);
  const args = ['--inventory', inventory, '--limit', 'lab1'];
  const connect = (from: string, address: string) => tcpConnect(lab, from, address, 5432);
  const health = () => dockerPortChecks(inventory, 'lab1', 'pgpub');

  await writeTask(false);
  const fw = await runTaskCli(task, args);
  t.equal(fw.code, 0, 'ufw on, denying everything but SSH', { stdout: fw.stdout.slice(-2000) });
  t.match(await sh1('lab1', 'ufw status'), /Status: active[\s\S]*22\/tcp\s+ALLOW\s+Anywhere/);
  t.notMatch(await sh1('lab1', 'ufw status'), /5432/, 'ufw does not allow 5432');
  t.equal(await connect('lab2', lab.host('lab1').address), 'open', 'yet another host connects to the published port: Docker bypasses ufw');
  const before = await health();
  t.equal(before.code, 2, 'health.ts exits critical');
  t.same(before.checks, [
    { check: 'docker port', subject: '0.0.0.0:5432/tcp (pgpub)', value: 'reachable from anywhere: Docker publishes it past ufw, which does not allow 5432/tcp', severity: 'critical' },
  ]);

  await writeTask(true);
  const dry = await runTaskCli(task, [...args, '--dry-run']);
  t.equal(dry.code, 0, 'dry-run of the fix');
  const fixed = await runTaskCli(task, args);
  t.equal(fixed.code, 0, 'the fix', { stdout: fixed.stdout.slice(-2000) });
  t.same(changedSteps(fixed.report), { lab1: ['ufw.dockerUser'] });
  t.same(plannedSteps(dry.report), plannedSteps(fixed.report), 'the dry-run predicted it');
  t.equal(await connect('lab2', lab.host('lab1').address), 'closed', 'another host can no longer connect');
  t.equal(await connect('lab1', '127.0.0.1'), 'open', 'the host itself still can');
  t.equal(await sh1('lab1', `docker exec pgpub psql -XAtq -c 'SELECT 1'`), '1\n', 'and PostgreSQL runs on');
  const after = await health();
  t.same(after.checks, [{ check: 'docker port', subject: '0.0.0.0:5432/tcp (pgpub)', value: 'published, filtered by the ufw policy in DOCKER-USER', severity: 'ok' }], 'health.ts: no longer critical');
  const again = await runTaskCli(task, args);
  t.same(changedSteps(again.report), { lab1: [] }, 'second run: nothing changed');

  // The guard lives in ufw's own hook: it goes with ufw and comes back with it (as at boot).
  await sh1('lab1', 'ufw disable');
  t.equal(await connect('lab2', lab.host('lab1').address), 'open', 'ufw off: the guard is off too');
  await sh1('lab1', 'ufw --force enable');
  t.equal(await connect('lab2', lab.host('lab1').address), 'closed', 'ufw on again: closed again');
  // A container started after the guard is covered too.
  await sh1('lab1', `docker rm -f pgpub && docker run -d --name pgpub2 -p 5433:5432 ${POSTGRES_RUN} && for i in $(seq 1 50); do docker exec pgpub2 psql -XAtq -c 'SELECT 1' >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1`);
  t.equal(await tcpConnect(lab, 'lab2', lab.host('lab1').address, 5433), 'closed', 'a new published port is closed as well');
});

t.teardown(() => t.comment(`docker.test.ts took ${((Date.now() - started) / 1000).toFixed(1)}s`));
