// Docker 26 on Debian 13 (trixie) lab hosts, in the order a team meets it: tasks/provision.ts
// first (ufw, and the DOCKER-USER guard in ufw's hook while there is no Docker yet), then
// docker.io, docker-cli and docker-compose (2.26, the Compose v2 CLI plugin) installed afterwards,
// then a Compose stack publishing PostgreSQL's 5432 on 0.0.0.0 over iptables-nft: another host
// cannot reach it, the host itself can, health.ts sees no bypass, and a reboot keeps it so. Then
// a Compose deploy through scripts/deploy.ts with the `docker compose` plugin, health-checked,
// and a broken release rolled back automatically. Every outcome is read on the hosts with
// OpenSSH, or by connecting from the other host.
import t from 'tap';
import { ensureBusyboxImage, ensurePostgresImage, importImages, POSTGRES_RUN } from '../../lab/docker-images.ts';
import { withLab } from '../../lab/lab.ts';
import { changedSteps, labInventory, plannedSteps, runTaskCli, runTwice } from './support/cli.ts';
import { assertBrokenRolledBack, composeApp, dockerPortChecks, tcpConnect } from './support/docker.ts';
import { writeTaskFile } from './support/task-file.ts';

// A cold machine builds the trixie image and PostgreSQL's (about 4 min each, side by side) before
// the scenarios' 2 to 5 min (measured here on a warm cache, beside other test runs).
t.setTimeout(20 * 60_000);
const started = Date.now();
const log = (line: string) => t.comment(line);
const images = Promise.all([ensurePostgresImage({ log }), ensureBusyboxImage({ log })]);
images.catch(() => {}); // awaited below; a failure must not surface as an unhandled rejection first
const lab = await withLab(t, 2, { docker: true, image: { suite: 'trixie' } });
const lab1 = lab.host('lab1').address;

const out = async (host: string, command: string): Promise<string> => {
  const r = await lab.ssh(host, command);
  if (r.code !== 0) throw new Error(`${host}: ${command}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
};

// The controller is trusted: the many logins of this file stay clear of ufw's SSH limit.
const provisionInventory = await labInventory(lab, { lab1: { vars: { trusted: [lab.bridgeAddress] } } });
const provision = (...args: string[]) => runTaskCli('tasks/provision.ts', ['--inventory', provisionInventory, '--limit', 'lab1', ...args]);

const dockerTask = await writeTaskFile(
  'docker-host',
  ['apt', 'systemd'],
  `{ name: 'docker-host', async run(host) {
  await host.run(apt.packages({ names: ['docker.io', 'docker-cli', 'docker-compose'] }));
  await host.run(systemd.service({ name: 'docker', state: 'started', enabled: true }));
} }`,
);
const plainInventory = await labInventory(lab);
const dockerArgs = ['--inventory', plainInventory, '--limit', 'lab1'];

t.test('provision a Debian 13 host without Docker: the DOCKER-USER guard waits in ufw\'s hook', async (t) => {
  t.equal(await out('lab1', '. /etc/os-release && echo "$VERSION_ID $VERSION_CODENAME"'), '13 trixie\n', 'Debian 13');
  const real = await runTwice(t, provision);
  t.ok(changedSteps(real.report).lab1?.includes('ufw.dockerUser'), 'the guard was written');
  t.equal((await lab.ssh('lab1', 'command -v docker')).code, 1, 'no Docker on the host yet');
  t.match(await out('lab1', 'ufw status'), /Status: active/);
  t.match(await out('lab1', 'iptables -S DOCKER-USER'), /-A DOCKER-USER -o br-\+ -m comment --comment tackle-ufw-docker -j TACKLE-UFW-DOCKER/, 'the guard is loaded before Docker exists');
});

t.test('Docker 26 and the Compose v2 plugin installed after provisioning', async (t) => {
  // The docker unit comes with the package: the dry-run cannot know its state.
  await runTwice(t, (...args) => runTaskCli(dockerTask, [...dockerArgs, ...args]), { lab1: ['systemd.service docker started, enabled'] });
  t.match(await out('lab1', "docker version --format '{{.Server.Version}}'"), /^26\./, 'Docker 26');
  t.match(await out('lab1', 'docker compose version --short'), /^2\./, '`docker compose` is the v2 plugin: a compose deploy takes its branch (`if docker compose version`)');
  t.equal(await out('lab1', 'readlink -f /usr/bin/docker-compose'), '/usr/libexec/docker/cli-plugins/docker-compose\n', 'docker-compose is the same plugin');
  await importImages((command) => lab.ssh('lab1', command), await images);
  t.comment(`docker installed, images imported after ${((Date.now() - started) / 1000).toFixed(1)}s`);
});

t.test('a Compose PostgreSQL on 0.0.0.0:5432 after the fact: the provisioned guard keeps other hosts out', async (t) => {
  // The Compose file most teams write (`ports: ["5432:5432"]`), on a network of its own (br-*).
  // YAML takes JSON; the service runs POSTGRES_RUN's user, image and command.
  const [, user, image, ...command] = POSTGRES_RUN.split(' ');
  const db = { services: { postgres: { image, user, command, ports: ['5432:5432'], restart: 'always' } } };
  // Ready when psql inside the container gets an answer (bounded: a minute).
  const ready = () => out('lab1', `for i in $(seq 1 300); do docker exec db-postgres-1 psql -XAtq -c 'SELECT 1' >/dev/null 2>&1 && exit 0; sleep 0.2; done; docker logs db-postgres-1 >&2; exit 1`);
  await out('lab1', `mkdir -p /srv/db && cat > /srv/db/compose.yaml <<'EOF'\n${JSON.stringify(db)}\nEOF\ncd /srv/db && docker compose up -d`);
  await ready();
  t.match(await out('lab1', "docker ps --format '{{.Names}} {{.Ports}}'"), /^db-postgres-1 0\.0\.0\.0:5432->5432\/tcp/m, 'published on every address');
  t.notMatch(await out('lab1', 'ufw status'), /5432/, 'ufw does not allow 5432');

  t.equal(await tcpConnect(lab, 'lab2', lab1, 5432), 'closed', 'another host cannot connect');
  t.equal(await tcpConnect(lab, 'lab1', '127.0.0.1', 5432), 'open', 'the host itself can');
  t.equal(await out('lab1', `docker exec db-postgres-1 psql -XAtq -c 'SELECT 1'`), '1\n', 'PostgreSQL runs');
  const health = await dockerPortChecks(plainInventory, 'lab1', 'db-postgres-1');
  t.same(health.checks, [{ check: 'docker port', subject: '0.0.0.0:5432/tcp (db-postgres-1)', value: 'published, filtered by the ufw policy in DOCKER-USER', severity: 'ok' }], 'health.ts: filtered, no bypass');

  // It is the guard that keeps the port closed, not ufw's own rules: with ufw active but the
  // guard removed, Docker publishes past it; ufw's reload brings the guard back.
  await out('lab1', '/etc/ufw/after.init stop');
  t.equal(await tcpConnect(lab, 'lab2', lab1, 5432), 'open', 'without the guard another host connects');
  const bypass = await dockerPortChecks(plainInventory, 'lab1', 'db-postgres-1');
  t.same(
    bypass.checks,
    [{ check: 'docker port', subject: '0.0.0.0:5432/tcp (db-postgres-1)', value: 'reachable from anywhere: Docker publishes it past ufw, which does not allow 5432/tcp', severity: 'critical' }],
    'and health.ts reports the bypass',
  );
  await out('lab1', 'ufw reload');
  t.equal(await tcpConnect(lab, 'lab2', lab1, 5432), 'closed', 'ufw reloaded: closed again');

  const dry = await provision('--dry-run');
  const again = await provision();
  t.equal(again.code, 0, 'provision again', { stdout: again.stdout.slice(-3000) });
  t.same(plannedSteps(again.report), plannedSteps(dry.report), 'the dry-run predicted it');
  t.same(changedSteps(again.report), { lab1: [] }, 'provision again on the Docker host: nothing changed');
  t.equal(await tcpConnect(lab, 'lab2', lab1, 5432), 'closed', 'still closed');

  // Every boot repeats the order of this file: ufw (and its hook, the guard) first, then Docker,
  // which starts the container again and publishes its port.
  await lab.reboot('lab1');
  await ready();
  t.equal(await tcpConnect(lab, 'lab2', lab1, 5432), 'closed', 'after a reboot another host still cannot connect');
  t.equal(await tcpConnect(lab, 'lab1', '127.0.0.1', 5432), 'open', 'and the host still can');
  await out('lab1', 'cd /srv/db && docker compose down');
});

t.test('a Compose deploy with the `docker compose` plugin: health-checked, and a broken release rolled back automatically', async (t) => {
  const [, busybox] = await images;
  const app = await composeApp(lab, 'lab1', busybox.ref);
  const restart = 'docker compose --project-name shop up -d --remove-orphans';
  const commands = (r: Awaited<ReturnType<typeof app.deploy>>) => r.report?.hosts[0]?.steps.flatMap((s) => s.commands ?? []).join('\n') ?? '';

  const dry = await app.deploy('1', '--dry-run');
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout.slice(-3000), stderr: dry.stderr });
  t.match(commands(dry), restart, 'the plan restarts with `docker compose`');
  const first = await app.deploy('1');
  t.equal(first.code, 0, 'release 1 deployed', { stdout: first.stdout.slice(-3000), stderr: first.stderr });
  t.same(plannedSteps(first.report), plannedSteps(dry.report), 'the dry-run predicted it');
  t.match(commands(first), restart, 'the run restarted with `docker compose`');
  t.equal(await app.version(), '1', 'release 1 answers');
  t.match(await out('lab1', `docker ps --filter label=com.docker.compose.project=shop --format '{{.Label "com.docker.compose.version"}}'`), /^2\./, 'its container was made by Compose v2');

  const second = await app.deploy('2');
  t.equal(second.code, 0, 'release 2 deployed', { stdout: second.stdout.slice(-3000), stderr: second.stderr });
  t.equal(await app.version(), '2', 'release 2 answers');
  t.equal(await app.images(), 'app:2', 'one container, of the new image');
  const again = await app.deploy('2');
  t.equal(again.code, 0, 'release 2 again');
  t.same(changedSteps(again.report), { lab1: [] }, 'the same release again: nothing changed');

  await assertBrokenRolledBack(t, lab, 'lab1', app);
});

t.teardown(() => t.comment(`docker-trixie.test.ts took ${((Date.now() - started) / 1000).toFixed(1)}s`));
