// Issue 10 item 5: deploys without downtime. One lab host runs nginx in front of the tiny app of
// support/app-repo.ts, made slow to start (it sleeps 2 s before listening, as real apps take
// time). A bounded request loop from this machine hits the site every 25 ms during each deploy
// and rollback and records every answer. A plain deploy (switch `current`, restart the unit)
// drops requests while the app restarts; a blue/green deploy (the new release started on the
// other port, health-checked there, then the nginx upstream switched with a reload) drops none,
// and neither does a failed deploy or a rollback.
import { request } from 'node:http';
import t from 'tap';
import { run } from '../../lab/exec.ts';
import { withLab } from '../../lab/lab.ts';
import { serveAppRepo } from './support/app-repo.ts';
import { labInventory, runTaskCli, type CliRun } from './support/cli.ts';
import { writeTaskFile } from './support/task-file.ts';

const START_DELAY_S = 2;
const PORTS = [3001, 3002] as const;

const lab = await withLab(t, 1);
const address = lab.host('lab1').address;
const repo = await serveAppRepo(t, lab, [
  ['v1', 'ok'],
  ['v2', 'ok'],
  ['v3', 'broken'],
]);

// The plain app on port 8000 from /srv/plain/current; the blue/green app as a template unit,
// one instance per port, each running the release its /srv/app/current-PORT link names.
const unit = (port: string, dir: string) =>
  `[Unit]\nDescription=tiny app\n[Service]\nEnvironment=PORT=${port} START_DELAY=${START_DELAY_S}\nExecStart=/usr/bin/python3 ${dir}/server.py\nRestart=on-failure\n`;
await lab.ssh('lab1', 'cat > /etc/systemd/system/plain.service', { input: unit('8000', '/srv/plain/current') });
await lab.ssh('lab1', 'cat > /etc/systemd/system/app@.service && systemctl daemon-reload', { input: unit('%i', '/srv/app/current-%i') });
const install = await lab.ssh('lab1', 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null 2>&1 && apt-get install -y -q nginx git 2>&1 | tail -3; echo "exit ${PIPESTATUS[0]}"');
if (!install.stdout.endsWith('exit 0\n')) throw new Error(`installing nginx failed: ${install.stdout}`);

const health = { healthBody: 'ok', healthTimeout: 20 };
const plainInventory = await labInventory(lab, { lab1: { vars: { app: 'plain', repo, service: 'plain.service', healthUrl: 'http://127.0.0.1:8000/health', ...health } } });
const bgVars = { app: 'app', repo, service: 'app@.service', blueGreen: { ports: [...PORTS], upstream: 'app', healthPath: '/health' }, ...health };
const bgInventory = await labInventory(lab, { lab1: { vars: bgVars } });
const stoppingInventory = await labInventory(lab, { lab1: { vars: { ...bgVars, blueGreen: { ...bgVars.blueGreen, stopPrevious: true, drainSeconds: 1 } } } });

const cli = (script: string, inventory: string, ...args: string[]) => runTaskCli(script, ['--inventory', inventory, ...args]);
const out = (r: CliRun) => ({ stdout: r.stdout.slice(-3000), stderr: r.stderr.slice(-2000) });

interface Answer {
  ms: number;
  status: number;
  body: string;
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    // A new connection each time (agent: false), as separate clients would come.
    const req = request(url, { agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      res.on('error', (err) => resolve({ status: 0, body: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => resolve({ status: 0, body: err.message }));
    req.end();
  });
}

/**
 * Requests `url` every 25 ms until `stop()` is called, or at most 6000 requests / 180 s; `stop`
 * resolves with every answer. It starts and ends with a few requests around the action.
 */
function requestLoop(url: string) {
  const answers: Answer[] = [];
  const start = performance.now();
  let stopping = false;
  const done = (async () => {
    while (!stopping && answers.length < 6000 && performance.now() - start < 180_000) {
      const r = await get(url);
      answers.push({ ms: Math.round(performance.now() - start), ...r });
      await new Promise((res) => setTimeout(res, 25));
    }
  })();
  return {
    async stop(): Promise<Answer[]> {
      await new Promise((res) => setTimeout(res, 500));
      stopping = true;
      await done;
      return answers;
    },
  };
}

/** Runs `action` inside a request loop against `url`; the answers, the non-200 ones and the bodies in the order they changed. */
async function during<T>(url: string, action: () => Promise<T>) {
  const loop = requestLoop(url);
  await new Promise((res) => setTimeout(res, 300));
  const result = await action();
  const answers = await loop.stop();
  const bad = answers.filter((a) => a.status !== 200);
  const transitions = answers.filter((a, i) => i === 0 || a.body !== answers[i - 1]?.body).map((a) => `${a.ms} ms: ${a.status} ${a.body}`);
  return { result, answers, bad, bodies: [...new Set(answers.filter((a) => a.status === 200).map((a) => a.body))], transitions };
}

const color = async () => {
  const upstream = (await lab.ssh('lab1', 'cat /etc/nginx/conf.d/upstream-app.conf')).stdout;
  return /server 127\.0\.0\.1:(\d+);/.exec(upstream)?.[1];
};
const mainPid = async (port: number) => (await lab.ssh('lab1', `systemctl show -p MainPID --value app@${port}.service`)).stdout.trim();
const isActive = async (port: number) => (await lab.ssh('lab1', `systemctl is-active app@${port}.service || :`)).stdout.trim();
const records = async () =>
  (await lab.ssh('lab1', 'cat /srv/app/releases.jsonl')).stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** A task that writes one nginx site and reloads nginx. */
const siteTask = (site: string) =>
  writeTaskFile(
    'site',
    ['nginx', 'systemd'],
    `{ name: 'site', async run(host) {
      await host.run(nginx.defaultSite({ present: false }));
      await host.run(nginx.site(${site}));
      await host.run(systemd.service({ name: 'nginx', state: 'reloaded' }));
    } }`,
  );

t.test('a plain deploy (switch current, restart) drops requests while the slow app restarts', async (t) => {
  const v1 = await cli('scripts/deploy.ts', plainInventory, '--ref', 'v1');
  t.equal(v1.code, 0, 'plain deploy v1', out(v1));
  const site = await cli(await siteTask(`{ name: 'plain', serverNames: ['_'], listen: { http: 8080 }, upstreams: ['127.0.0.1:8000'], ipv6: false }`), plainInventory);
  t.equal(site.code, 0, 'site plain', out(site));
  t.equal((await get(`http://${address}:8080/`)).body, 'release v1');
  const phase = await during(`http://${address}:8080/`, () => cli('scripts/deploy.ts', plainInventory, '--ref', 'v2'));
  t.equal(phase.result.code, 0, 'plain deploy v2', out(phase.result));
  t.comment(`plain deploy: ${phase.answers.length} requests, ${phase.bad.length} not 200; transitions:\n${phase.transitions.join('\n')}`);
  t.ok(phase.bad.length > 0, `the restart is seen: ${phase.bad.length} of ${phase.answers.length} answers were not 200 (${[...new Set(phase.bad.map((a) => a.status))].join(', ')})`);
  t.same(phase.bad.filter((a) => a.status !== 502), [], 'nginx answered 502 Bad Gateway while nothing listened on 8000');
  t.equal(phase.answers[0]?.body, 'release v1', 'v1 answered before');
  t.equal(phase.answers.at(-1)?.body, 'release v2', 'v2 answered after');
});

t.test('blue/green v1 on blue, then the site in front of it (nginx.site proxying to the upstream the deploy wrote)', async (t) => {
  const bg = await cli('scripts/deploy.ts', bgInventory, '--ref', 'v1');
  t.equal(bg.code, 0, 'blue/green deploy v1', out(bg));
  t.equal(await color(), '3001', 'the first release is blue, on the first port');
  const site = await cli(await siteTask(`{ name: 'app', serverNames: ['_'], upstreams: ['127.0.0.1:${PORTS[0]}'], locations: [{ path: '/', proxyPass: 'http://app' }], ipv6: false }`), bgInventory);
  t.equal(site.code, 0, 'site app', out(site));
  t.equal((await get(`http://${address}/`)).body, 'release v1');
});

t.test('blue/green deploy v2: started on green, checked there, upstream switched; every answer 200, v1 then v2', async (t) => {
  const bluePid = await mainPid(PORTS[0]);
  const phase = await during(`http://${address}/`, () => cli('scripts/deploy.ts', bgInventory, '--ref', 'v2'));
  t.equal(phase.result.code, 0, 'deploy v2', out(phase.result));
  t.comment(`deploy v2: ${phase.answers.length} requests; transitions:\n${phase.transitions.join('\n')}`);
  t.same(phase.bad, [], 'no answer other than 200');
  t.ok(phase.answers.length > 40, `the loop ran through the deploy (${phase.answers.length} requests)`);
  t.same(phase.bodies, ['release v1', 'release v2'], 'v1 until the switch, v2 after');
  t.equal(phase.answers.at(-1)?.body, 'release v2');
  t.equal(await color(), '3002', 'the upstream names green');
  t.equal(await mainPid(PORTS[0]), bluePid, 'blue still runs v1, untouched: the way back');
  t.match((await records()).at(-1), { action: 'deploy', ref: 'v2', result: 'ok', port: 3002, color: 'green', previous: /-v1$/ });
});

t.test('blue/green deploy v3 fails its health check on blue: traffic stays on v2, blue is stopped, exit 2', async (t) => {
  const phase = await during(`http://${address}/`, () => cli('scripts/deploy.ts', bgInventory, '--ref', 'v3'));
  t.equal(phase.result.code, 2, 'deploy v3 fails', out(phase.result));
  t.comment(`deploy v3: ${phase.answers.length} requests; transitions:\n${phase.transitions.join('\n')}`);
  t.same(phase.bad, [], 'no answer other than 200');
  t.same(phase.bodies, ['release v2'], 'every answer came from v2');
  const step = phase.result.report?.hosts[0]?.steps.find((s) => s.status === 'failed');
  t.match(step?.error?.reason, /^failed \(traffic stayed on \S+-v2, green, port 3002\): blue \(port 3001\) not healthy .*answered 500/);
  t.equal(await color(), '3002', 'the upstream still names green');
  t.equal(await isActive(PORTS[0]), 'inactive', 'the failed release on blue is stopped');
  t.match((await records()).at(-1), { action: 'deploy', ref: 'v3', result: 'failed', port: 3001, color: 'blue' });
});

t.test('rollback to v1: blue started on v1 and checked first, then the upstream switched; every answer 200', async (t) => {
  const phase = await during(`http://${address}/`, () => cli('scripts/rollback.ts', bgInventory));
  t.equal(phase.result.code, 0, 'rollback', out(phase.result));
  t.comment(`rollback to v1: ${phase.answers.length} requests; transitions:\n${phase.transitions.join('\n')}`);
  t.same(phase.bad, [], 'no answer other than 200');
  t.same(phase.bodies, ['release v2', 'release v1'], 'v2 until the switch, v1 after');
  t.equal(phase.answers.at(-1)?.body, 'release v1');
  t.equal(await color(), '3001', 'the upstream names blue');
  t.match((await records()).at(-1), { action: 'rollback', ref: 'v1', result: 'ok', port: 3001, color: 'blue', previous: /-v2$/ });
});

t.test('rollback to v2, which green still runs: the upstream switched back without a restart', async (t) => {
  const greenPid = await mainPid(PORTS[1]);
  const v2 = String((await records()).findLast((r) => r.ref === 'v2' && r.result === 'ok')?.release);
  const phase = await during(`http://${address}/`, () => cli('scripts/rollback.ts', bgInventory, '--to', v2));
  t.equal(phase.result.code, 0, 'rollback --to v2', out(phase.result));
  t.comment(`rollback to v2: ${phase.answers.length} requests; transitions:\n${phase.transitions.join('\n')}`);
  t.same(phase.bad, [], 'no answer other than 200');
  t.same(phase.bodies, ['release v1', 'release v2'], 'v1 until the switch, v2 after');
  t.equal(phase.answers.at(-1)?.body, 'release v2');
  t.equal(await mainPid(PORTS[1]), greenPid, 'green was not restarted');
  t.match(phase.result.report?.hosts[0]?.steps.find((x) => x.name.startsWith('deploy.rollback'))?.summary, /on green \(port 3002\), which runs it already: no restart$/, 'the plan said so');
  t.equal(await color(), '3002');
  const shown = await run(process.execPath, ['--import', 'tsx', 'scripts/releases.ts', '--inventory', bgInventory]);
  t.match(shown.stdout, /lab1: app current \S+-v2 \(green, port 3002\)/, 'releases.ts names the live color');
});

t.test('with stopPrevious, the color traffic left is stopped after the drain delay; still every answer 200', async (t) => {
  const phase = await during(`http://${address}/`, () => cli('scripts/deploy.ts', stoppingInventory, '--ref', 'v1'));
  t.equal(phase.result.code, 0, 'deploy v1 again', out(phase.result));
  t.comment(`deploy v1 with stopPrevious: ${phase.answers.length} requests; transitions:\n${phase.transitions.join('\n')}`);
  t.same(phase.bad, [], 'no answer other than 200');
  t.same(phase.bodies, ['release v2', 'release v1']);
  t.equal(await color(), '3001', 'blue is live');
  t.equal(await isActive(PORTS[1]), 'inactive', 'green was stopped');
  t.equal(await isActive(PORTS[0]), 'active');
});
