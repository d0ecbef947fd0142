// What the Docker e2e files (Debian 12's docker.io with Compose v1, Debian 13's Docker 26 with the
// Compose v2 plugin) share: the compose app the deploy tests release and roll back, a TCP probe
// from one lab host to another, and health.ts's verdict on a container's published ports.
import type { Test } from 'tap';
import { run } from '../../../lab/exec.ts';
import type { Lab } from '../../../lab/lab.ts';
import { labInventory, runTaskCli } from './cli.ts';

/** Runs a command on a lab host and returns its stdout; a non-zero exit fails loudly. */
async function out(lab: Lab, host: string, command: string): Promise<string> {
  const r = await lab.ssh(host, command);
  if (r.code !== 0) throw new Error(`${host}: ${command}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

// Releases are image tags of a busybox httpd app; the tag `broken` exits at once with code 3.
// `version` is kept for Compose v1 (v2 ignores it).
const COMPOSE = `version: "3"
services:
  web:
    image: "app:\${IMAGE_TAG}"
    environment:
      TAG: "\${IMAGE_TAG}"
    command: ["/bin/sh", "-c", "test \\"$$TAG\\" != broken || exit 3; mkdir -p /www && echo $$TAG > /www/version && echo ok > /www/health && exec httpd -f -p 8000 -h /www"]
    ports: ["127.0.0.1:8000:8000"]
`;

/**
 * Sets up the compose app `shop` on a docker host: the image tags `1`, `2` and `broken` (all of
 * `busyboxRef`), the compose file in /srv/shop-template, and an inventory with its deploy vars.
 * Resolves with a deploy through scripts/deploy.ts and readers of what the host runs.
 *
 * @example const app = await composeApp(lab, 'lab1', busybox.ref); await app.deploy('2'); await app.version() // '2'
 */
export async function composeApp(lab: Lab, host: string, busyboxRef: string) {
  await out(lab, host, `for tag in 1 2 broken; do docker tag ${busyboxRef} app:$tag; done && mkdir -p /srv/shop-template && cat > /srv/shop-template/docker-compose.yml <<'EOF'\n${COMPOSE}EOF`);
  const vars = { app: 'shop', compose: true, composeTemplate: '/srv/shop-template', healthUrl: 'http://127.0.0.1:8000/health', healthBody: 'ok', healthTimeout: 20 };
  const inventory = await labInventory(lab, { [host]: { vars } });
  return {
    /** Deploys the image tag `tag` (`--image-tag`) with more flags, e.g. `--dry-run`. */
    deploy: (tag: string, ...args: string[]) => runTaskCli('scripts/deploy.ts', ['--inventory', inventory, '--limit', host, '--image-tag', tag, ...args]),
    /** The release tag the app answers on the host. */
    version: async () => (await out(lab, host, 'wget -qO- http://127.0.0.1:8000/version 2>/dev/null || curl -fsS http://127.0.0.1:8000/version')).trim(),
    /** The images of the project's containers (`docker ps`). */
    images: async () => (await out(lab, host, `docker ps --filter label=com.docker.compose.project=shop --format '{{.Image}}'`)).trim(),
  };
}

/**
 * Deploys the release `broken` over release 2, which must be live: the host fails, the health
 * wait ends on the exited container, and the automatic rollback leaves release 2 serving.
 */
export async function assertBrokenRolledBack(t: Test, lab: Lab, host: string, app: Awaited<ReturnType<typeof composeApp>>): Promise<void> {
  const bad = await app.deploy('broken');
  t.equal(bad.code, 2, 'the broken release fails the host', { stdout: bad.stdout.slice(-3000) });
  t.match(bad.stdout, /container of web exited with code 3/, 'the wait ended on the exited container, with the reason');
  t.match(bad.stdout, /rolled back/i);
  t.equal(await app.version(), '2', 'release 2 serves again after the automatic rollback');
  t.equal(await app.images(), 'app:2', 'its container runs again');
  t.equal((await out(lab, host, 'cat /srv/shop/current/.env')).trim(), 'IMAGE_TAG=2', 'current points at release 2');
}

/**
 * A TCP connect from lab host `from` to `address:port`, bounded to 3 s: `open`, or `closed` for
 * a refusal or a silent drop alike.
 *
 * @example await tcpConnect(lab, 'lab2', lab.host('lab1').address, 5432) // 'closed'
 */
export async function tcpConnect(lab: Lab, from: string, address: string, port: number): Promise<'open' | 'closed'> {
  const result = await out(lab, from, `python3 -c "import socket; s=socket.socket(); s.settimeout(3); print('open' if s.connect_ex(('${address}', ${port})) == 0 else 'closed')"`);
  return result.trim() as 'open' | 'closed';
}

/** One check of health.ts's JSON report. */
export interface HealthCheck {
  check: string;
  subject: string;
  value: string;
  severity: string;
}

/**
 * Runs scripts/health.ts on one host of `inventory` and returns its exit code and its `docker
 * port` checks of `container`.
 *
 * @example const { code, checks } = await dockerPortChecks(inventory, 'lab1', 'pgpub');
 */
export async function dockerPortChecks(inventory: string, host: string, container: string): Promise<{ code: number; checks: HealthCheck[] | undefined }> {
  const r = await run(process.execPath, ['--import', 'tsx', 'scripts/health.ts', '--inventory', inventory, '--limit', host, '--json', '-'], { timeoutMs: 120_000 });
  const report = JSON.parse(r.stdout) as { hosts: Array<{ data?: { checks: HealthCheck[] } }> };
  return { code: r.code, checks: report.hosts[0]?.data?.checks.filter((c) => c.check === 'docker port' && c.subject.endsWith(`(${container})`)) };
}
