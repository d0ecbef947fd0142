// scripts/deploy.ts, rollback.ts and releases.ts on three lab hosts, each running a tiny HTTP app
// under systemd from /srv/app/current. The app comes from a git repository this machine serves
// over (dumb) HTTP on the lab bridge: tag a and b are healthy releases, c answers 500 on /health.
import t from 'tap';
import { run } from '../../lab/exec.ts';
import { withLab } from '../../lab/lab.ts';
import { appOnHost, installAppUnit, serveAppRepo } from './support/app-repo.ts';
import { changedSteps, labInventory, runTaskCli, plannedSteps } from './support/cli.ts';

const lab = await withLab(t, 3);
const names = lab.hosts.map((h) => h.name);
const repo = await serveAppRepo(t, lab, [
  ['a', 'ok'],
  ['b', 'ok'],
  ['c', 'broken'],
]);
await installAppUnit(lab, names);

const vars = { app: 'app', repo, service: 'app.service', healthUrl: 'http://127.0.0.1:8000/health', healthBody: 'ok', healthTimeout: 8 };
const inventory = await labInventory(lab, Object.fromEntries(names.map((n) => [n, { vars }])));
const deploy = (...args: string[]) => runTaskCli('scripts/deploy.ts', ['--inventory', inventory, ...args]);
const { page, live, records } = appOnHost(lab);
const statuses = (report: Awaited<ReturnType<typeof deploy>>['report']) => Object.fromEntries((report?.hosts ?? []).map((h) => [h.name, h.status]));

t.test('first release a on fresh hosts: dry-run predicts it, git installed, app serving', async (t) => {
  const dry = await deploy('--ref', 'a', '--dry-run');
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout.slice(-3000), stderr: dry.stderr });
  t.equal((await lab.ssh('lab1', 'test -e /srv/app; echo $?')).stdout.trim(), '1', 'the dry-run created nothing');
  const real = await deploy('--ref', 'a');
  t.equal(real.code, 0, 'deploy a', { stdout: real.stdout.slice(-3000), stderr: real.stderr });
  t.same(plannedSteps(real.report), plannedSteps(dry.report), 'the dry-run listed exactly the steps that changed');
  t.same(changedSteps(real.report).lab1, ['apt.packages git', 'deploy.release app a']);
  for (const n of names) t.equal(await page(n), 'release a\n', `${n} serves a`);
});

t.test('release b, one host at a time: all end on b, each passed its health check; again changes nothing', async (t) => {
  const dry = await deploy('--ref', 'b', '--serial', '1', '--max-fail', '0', '--dry-run');
  const real = await deploy('--ref', 'b', '--serial', '1', '--max-fail', '0');
  t.equal(real.code, 0, 'deploy b', { stdout: real.stdout.slice(-3000), stderr: real.stderr });
  t.same(plannedSteps(real.report), plannedSteps(dry.report));
  t.same(statuses(real.report), { lab1: 'changed', lab2: 'changed', lab3: 'changed' });
  const created: string[] = [];
  const passed: string[] = [];
  for (const n of names) {
    t.equal(await page(n), 'release b\n', `${n} serves b`);
    t.match(await live(n), /^\d{8}T\d{6}Z-b$/);
    const last = (await records(n)).at(-1);
    t.match(last, { action: 'deploy', result: 'ok', ref: 'b', commit: /^[0-9a-f]{40}$/, previous: /-a$/ }, `${n} recorded b as healthy`);
    created.push(JSON.parse((await lab.ssh(n, 'cat /srv/app/current/.tackle-release')).stdout).createdAt as string);
    passed.push(last?.time ?? '');
  }
  t.ok(passed[0] !== undefined && created[1] !== undefined && passed[0] <= created[1] && (passed[1] ?? '') <= (created[2] ?? ''), 'serial: each host was healthy before the next one started', { created, passed });

  const again = await deploy('--ref', 'b', '--serial', '1', '--max-fail', '0');
  t.equal(again.code, 0);
  t.same(changedSteps(again.report), { lab1: [], lab2: [], lab3: [] }, 'second run: nothing changed');
});

t.test('release c fails its health check on the first host: rolled back to b, the rollout stops, exit 2', async (t) => {
  const before = await Promise.all(names.map(live));
  const r = await deploy('--ref', 'c', '--serial', '1', '--max-fail', '0');
  t.equal(r.code, 2, 'exit code 2', { stdout: r.stdout.slice(-3000) });
  t.same(statuses(r.report), { lab1: 'failed', lab2: 'skipped', lab3: 'skipped' });
  const step = r.report?.hosts[0]?.steps.find((s) => s.name === 'deploy.release app c');
  t.equal(step?.status, 'failed');
  t.match(step?.error?.reason, new RegExp(`^failed \\(rolled back\\): rolled back to ${before[0]}: not healthy after \\d+ attempts in [\\d.]+ s: GET http://127\\.0\\.0\\.1:8000/health answered 500, expected 200: broken$`));
  t.match(r.stdout, /lab1 failed:[\s\S]*failed \(rolled back\): rolled back to/, 'the recap says so');
  t.equal(await page('lab1'), 'release b\n', 'lab1 is back on b and serving');
  t.equal(await live('lab1'), before[0]);
  t.match((await records('lab1')).at(-1), { action: 'deploy', ref: 'c', result: 'rolled-back', previous: before[0], reason: /answered 500/ });
  for (const n of ['lab2', 'lab3']) {
    t.equal(await page(n), 'release b\n', `${n} stays on b`);
    t.equal((await lab.ssh(n, 'ls /srv/app/releases | grep -c -- -c$ || true')).stdout.trim(), '0', `${n} never saw c`);
  }
});

t.test('rollback.ts returns a host to the previous release, and releases.ts shows the record', async (t) => {
  const r = await runTaskCli('scripts/rollback.ts', ['--inventory', inventory, '--limit', 'lab2']);
  t.equal(r.code, 0, 'rollback', { stdout: r.stdout.slice(-3000) });
  t.match(changedSteps(r.report), { lab2: ['deploy.rollback app'] });
  t.equal(await page('lab2'), 'release a\n', 'lab2 serves a again');
  t.match(await live('lab2'), /-a$/);
  t.match((await records('lab2')).at(-1), { action: 'rollback', result: 'ok', ref: 'a', previous: /-b$/ });

  const json = await run(process.execPath, ['--import', 'tsx', 'scripts/releases.ts', '--inventory', inventory, '--json', '-']);
  t.equal(json.code, 0, json.stderr);
  const hosts = (JSON.parse(json.stdout) as { hosts: Array<{ data: { host: string; current: string; releases: string[]; records: Array<{ result: string; action: string }> } }> }).hosts.map((h) => h.data);
  t.match(hosts.find((h) => h.host === 'lab2'), { current: /-a$/, records: [{ result: 'ok' }, { result: 'ok' }, { action: 'rollback', result: 'ok' }] });
  t.match(hosts.find((h) => h.host === 'lab1'), { current: /-b$/, releases: [/-a$/, /-b$/, /-c$/] });
  t.same(hosts.find((h) => h.host === 'lab1')?.records.map((x) => x.result), ['ok', 'ok', 'rolled-back']);
  const table = await run(process.execPath, ['--import', 'tsx', 'scripts/releases.ts', '--inventory', inventory, '--limit', 'lab1']);
  t.equal(table.code, 0);
  t.match(table.stdout, /lab1: app current \d{8}T\d{6}Z-b; 3 release\(s\) in \/srv\/app\/releases/);
  t.match(table.stdout, /lab1\s+\S+ \S+\s+deploy\s+\S+-c\s+c\s+[0-9a-f]{7}\s+rolled-back\s+not healthy/);
});
