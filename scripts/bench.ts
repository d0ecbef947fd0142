// npm run bench: the figures of issue 9's targets, each printed beside its target, as a Markdown
// table to paste into the README. Not part of CI; needs root (it starts and removes its own lab
// hosts) and takes a few minutes, most of it converging the hosts once (packages through the proxy).
//
//   npm run bench                      # 10 hosts, converged tasks/provision.ts
//   npm run bench -- --runs 7          # more runs per whole-process median (default 5)
//   npm run bench -- --lab 3           # use running lab 3 (`npm run lab -- up 10`) instead of a new one
//   npm run bench -- --hosts 3         # the same figures on 3 hosts (the first provisioning of 3 fresh hosts)
//   npm run bench -- --hosts 100       # the 100-host figure: converged tasks/baseline.ts, in-process
//
// Whole-process times are medians of spawning the command as a user types it, until it exits.
// In-process figures come from a fresh child process per run, so that its peak RSS is its own.
// The hosts' CPU time is their cgroups' usage (the lab gives each host its own) across a run.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadInventoryFile, openConnection, runTask, selectHosts, type Connection, type Task } from '../lib/index.ts';
// The one import of the lab: its hosts and a way to find a running one.
import { listLabs, startLab, type Lab } from '../lab/lab.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The lab's limit per lab; a larger bench starts several labs. */
const LAB_MAX_HOSTS = 50;

/** What the bench uses of a lab. */
type BenchLab = Pick<Lab, 'index' | 'hosts' | 'privateKeyPath' | 'knownHostsPath' | 'bridgeAddress'>;

/** One in-process run, as the child reports it. */
interface InProcess {
  wallMs: number;
  /** The controller's CPU time during the run. */
  cpuMs: number;
  changedSteps: number;
  failedHosts: number;
  /** The first failed host's error, for a converging run that failed. */
  firstError?: string;
  channels: number;
  roundTrips: number;
  commands: number;
  peakRssMb: number;
}

/** Child mode: one run of `taskName` over every host of the inventory, figures as JSON on stdout. */
async function measure(inventoryFile: string, taskName: string, concurrency: number): Promise<InProcess> {
  const inventory = await loadInventoryFile(inventoryFile, { cwd: ROOT });
  const mod = (await import(join(ROOT, 'tasks', `${taskName}.ts`))) as { default: Task<never> };
  const hosts = selectHosts(inventory);
  const conns: Connection[] = [];
  const ctx = { home: process.env.HOME ?? '/root', localUser: 'root' };
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const result = await runTask(mod.default, hosts, {
    concurrency,
    connect: async (h) => {
      const c = await openConnection(h, inventory, ctx);
      conns.push(c);
      return c;
    },
  });
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const total = (k: 'channels' | 'commands' | 'roundTrips') => conns.reduce((sum, c) => sum + c.stats()[k], 0);
  return {
    wallMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    changedSteps: result.hosts.flatMap((h) => h.steps).filter((s) => s.status === 'changed').length,
    failedHosts: result.hosts.filter((h) => h.status === 'failed' || h.status === 'unreachable').length,
    firstError: result.hosts.find((h) => h.error)?.error?.message,
    channels: total('channels'),
    roundTrips: total('roundTrips'),
    commands: total('commands'),
    peakRssMb: process.resourceUsage().maxRSS / 1024,
  };
}

/**
 * CPU time of this process's waited-for children so far, in ms (cutime + cstime of /proc/self/stat,
 * in clock ticks of 10 ms): a whole-process figure that a busy shared machine disturbs less than wall time.
 */
async function childrenCpuMs(): Promise<number> {
  const stat = await readFile('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

interface Timed {
  ms: number;
  cpuMs: number;
}

/** Runs a command to its end; resolves with its wall and CPU time in ms, rejects on a non-zero exit. */
async function timed(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<Timed & { stdout: string }> {
  const cpu0 = await childrenCpuMs();
  const r = await new Promise<{ ms: number; stdout: string }>((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      const ms = performance.now() - t0;
      if (code === 0) resolve({ ms, stdout });
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}:\n${(stderr || stdout).slice(-2000)}`));
    });
  });
  return { ...r, cpuMs: (await childrenCpuMs()) - cpu0 };
}

async function inProcess(inventoryFile: string, taskName: string, concurrency: number): Promise<InProcess> {
  const { stdout } = await timed(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--measure', inventoryFile, taskName, String(concurrency)]);
  return JSON.parse(stdout) as InProcess;
}

/**
 * Whole process from spawn until the controller's first TCP connection reaches a host: a local
 * listener stands in for the host, and the process is killed once it connected.
 */
async function untilFirstConnection(task: string, inventoryOf: (port: number) => Promise<string>, env: NodeJS.ProcessEnv): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const inventory = await inventoryOf(port);
  try {
    return await new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      // Its own process group, so that npx, tsx's CLI and the node it starts all go together.
      const p = spawn('npx', ['tsx', task, '--inventory', inventory], { cwd: ROOT, env, stdio: 'ignore', detached: true });
      server.once('connection', (socket) => {
        resolve(performance.now() - t0);
        socket.destroy();
        process.kill(-(p.pid as number), 'SIGKILL');
      });
      p.on('exit', (code) => reject(new Error(`${task} exited ${code} before connecting`)));
    });
  } finally {
    server.close();
  }
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

async function repeat<T>(runs: number, f: () => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < runs; i++) out.push(await f());
  return out;
}

/** `runs` measured runs after one unmeasured, which fills tsx's cache as a user's earlier runs did. */
async function warmThenRepeat<T>(runs: number, f: () => Promise<T>): Promise<T[]> {
  await f();
  return repeat(runs, f);
}

/**
 * The environment of a command timed as a user runs it: tsx caches its compiled files under
 * TMPDIR, and the one on a machine that runs the tests holds tens of thousands of entries (tsx
 * scans them at every start), where a user's holds their project's; the bench gives it its own.
 */
function userEnv(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, TMPDIR: join(dir, 'tmp') };
}

/** Writes an inventory module: each lab host as root with the lab's key, with `vars`. */
async function writeInventory(dir: string, name: string, hosts: Record<string, object>): Promise<string> {
  const file = join(dir, `${name}.ts`);
  const index = JSON.stringify(join(ROOT, 'lib/index.ts'));
  await writeFile(file, `import { defineInventory } from ${index};\nexport default defineInventory({ hosts: ${JSON.stringify(hosts, null, 2)} });\n`);
  return file;
}

async function labInventory(dir: string, labs: readonly BenchLab[], vars: (lab: BenchLab, host: string) => object): Promise<string> {
  const hosts: Record<string, object> = {};
  for (const lab of labs) {
    for (const h of lab.hosts) {
      hosts[h.name] = { address: h.address, user: 'root', privateKeyPath: lab.privateKeyPath, knownHostsPath: lab.knownHostsPath, vars: vars(lab, h.name) };
    }
  }
  return writeInventory(dir, 'inventory', hosts);
}

/** provision's vars for a lab host: a plain-HTTP site (no ACME server needed), the controller trusted. */
async function provisionVars(lab: BenchLab): Promise<(lab: BenchLab, host: string) => object> {
  const key = (await readFile(`${lab.privateKeyPath}.pub`, 'utf8')).trim();
  return (l, host) => ({
    deployKeys: [key],
    trusted: [l.bridgeAddress],
    sites: [{ name: 'app', serverNames: [`${host}.app.test`], upstreams: ['127.0.0.1:8000'], tls: false }],
  });
}

/**
 * CPU time the hosts' cgroups used while `f` ran, in ms. The lab puts host NAME of lab N in
 * `tackle-lab/tkl-N-NAME` of each systemd hierarchy; the cgroup2 one counts CPU (cpu.stat).
 */
async function hostsCpuMs(labs: readonly BenchLab[], f: () => Promise<unknown>): Promise<number | undefined> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  const unified = mounts.split('\n').map((l) => l.split(' ')).find((m) => m[2] === 'cgroup2')?.[1];
  if (!unified) return undefined;
  const files = labs.flatMap((lab) => lab.hosts.map((h) => join(unified, 'tackle-lab', `tkl-${lab.index}-${h.name}`, 'cpu.stat')));
  const usage = async () => {
    const texts = await Promise.all(files.map((f) => readFile(f, 'utf8')));
    return texts.reduce((sum, t) => sum + Number(/^usage_usec (\d+)/m.exec(t)?.[1] ?? NaN), 0);
  };
  const before = await usage().catch(() => NaN);
  await f();
  const after = await usage().catch(() => NaN);
  return Number.isFinite(after - before) ? (after - before) / 1000 : undefined;
}

/** Rows of the printed table. */
type Row = [figure: string, measured: string, target: string];
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
/** Median wall time, and median CPU time (of the process and its children, or of the in-process run). */
const wallAndCpu = (runs: readonly Timed[]) => `${s(median(runs.map((r) => r.ms)))} (CPU ${s(median(runs.map((r) => r.cpuMs)))})`;

async function startLabs(hosts: number, lab: number | undefined): Promise<{ labs: BenchLab[]; down: () => Promise<void> }> {
  if (lab !== undefined) {
    const found = (await listLabs()).find((l) => l.index === lab);
    if (!found) throw new Error(`no running lab ${lab} (npm run lab -- status)`);
    if (found.hosts.length < hosts) throw new Error(`lab ${lab} has ${found.hosts.length} hosts, the bench needs ${hosts}`);
    return { labs: [{ ...found, hosts: found.hosts.slice(0, hosts) }], down: async () => {} };
  }
  const labs: Lab[] = [];
  const down = () => Promise.all(labs.map((l) => l.down())).then(() => {});
  try {
    // Each lab its own host-name prefix, so that one inventory can hold them all.
    for (let i = 0; i * LAB_MAX_HOSTS < hosts; i++) {
      labs.push(await startLab({ hosts: Math.min(LAB_MAX_HOSTS, hosts - i * LAB_MAX_HOSTS), name: `b${String.fromCharCode(97 + i)}`, log: (l) => console.error(l) }));
    }
  } catch (err) {
    await down();
    throw err;
  }
  return { labs, down };
}

/** Converges every host once, then checks that a second run finds nothing to change. */
async function converge(inventory: string, task: string, concurrency: number): Promise<InProcess> {
  console.error(`converging the hosts with tasks/${task}.ts (installs packages through the lab proxy)…`);
  const first = await inProcess(inventory, task, concurrency);
  if (first.failedHosts > 0) throw new Error(`the converging run failed on ${first.failedHosts} host(s), the first with: ${first.firstError}`);
  console.error(`converged in ${s(first.wallMs)}`);
  return first;
}

/**
 * Waits until the hosts are idle: a first provisioning leaves work behind it on each host (apt
 * triggers, services starting, timers), which would be measured as the converged run's. Idle is
 * under 5 % of a core for the whole fleet over 5 s; returns that share as last measured.
 */
async function settle(labs: readonly BenchLab[], maxMs = 180_000): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const used = await hostsCpuMs(labs, () => new Promise((resolve) => setTimeout(resolve, 5000)));
    const share = used === undefined ? 0 : used / 5000;
    if (share < 0.05 || performance.now() - t0 > maxMs) {
      console.error(`hosts idle at ${(share * 100).toFixed(1)} % of a core after ${s(performance.now() - t0)}`);
      return share;
    }
  }
}

/** `runs` in-process runs of a converged task on every host, each with the hosts' CPU per host it cost. */
async function convergedRuns(labs: readonly BenchLab[], inventory: string, task: string, runs: number): Promise<{ measured: InProcess[]; hostCpu: number[] }> {
  const n = labs.reduce((sum, l) => sum + l.hosts.length, 0);
  const measured: InProcess[] = [];
  const hostCpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const used = await hostsCpuMs(labs, async () => measured.push(await inProcess(inventory, task, n)));
    if (used !== undefined) hostCpu.push(used / n);
  }
  measured.forEach(assertConverged);
  return { measured, hostCpu };
}

function assertConverged(r: InProcess): void {
  if (r.changedSteps > 0 || r.failedHosts > 0) throw new Error(`a measured run was not converged: ${r.changedSteps} changed steps, ${r.failedHosts} failed hosts`);
}

/** The figures of a lab of up to ten hosts, with converged tasks/provision.ts. */
async function provisionFigures(labs: readonly BenchLab[], runs: number, dir: string): Promise<Row[]> {
  const n = labs.reduce((sum, l) => sum + l.hosts.length, 0);
  const vars = await provisionVars(labs[0] as BenchLab);
  const inventory = await labInventory(dir, labs, vars);
  // Fresh lab hosts: the first run is the first provisioning, bound by apt through the lab's proxy.
  const first = await converge(inventory, 'provision', n);
  const idle = await settle(labs);

  console.error('start-up: node, tsx, --help, first connection…');
  const env = userEnv(dir);
  const nodeFloor = await warmThenRepeat(runs, () => timed('node', ['-e', ''], env));
  const tsxFloor = await warmThenRepeat(runs, () => timed('npx', ['tsx', '-e', ''], env));
  const help = await warmThenRepeat(runs, () => timed('npx', ['tsx', 'tasks/provision.ts', '--help'], env));
  const helpNode = await warmThenRepeat(runs, () => timed('node', ['--import', 'tsx', 'tasks/provision.ts', '--help'], env));
  const firstLab = labs[0] as BenchLab;
  const firstConnection = median(
    await warmThenRepeat(runs, () =>
      untilFirstConnection('tasks/provision.ts', (port) =>
        writeInventory(dir, 'first-connection', { target: { address: '127.0.0.1', port, user: 'root', privateKeyPath: firstLab.privateKeyPath, knownHostsPath: firstLab.knownHostsPath } }),
      env),
    ),
  );

  console.error(`whole process on ${n} hosts…`);
  const report = join(dir, 'report.json');
  const whole = await warmThenRepeat(runs, async () => {
    const r = await timed('npx', ['tsx', 'tasks/provision.ts', '--inventory', inventory, '--json', report], env);
    const summary = (JSON.parse(await readFile(report, 'utf8')) as { summary: { changed: number; failed: number; unreachable: number } }).summary;
    if (summary.changed + summary.failed + summary.unreachable > 0) throw new Error(`the whole-process run was not converged: ${JSON.stringify(summary)}`);
    return r;
  });

  console.error(`in-process on ${n} hosts…`);
  const { measured: runsIn, hostCpu: cpu } = await convergedRuns(labs, inventory, 'provision', runs);
  const last = runsIn.at(-1) as InProcess;
  return [
    [`${n} hosts, whole process (\`npx tsx tasks/provision.ts\`, median of ${runs})`, wallAndCpu(whole), '≤ 1.0 s'],
    [`${n} hosts, in-process wall (median of ${runs})`, wallAndCpu(runsIn.map((r) => ({ ms: r.wallMs, cpuMs: r.cpuMs }))), '≤ 0.5 s'],
    ['SSH channels per converged host', (last.channels / n).toFixed(1), '1'],
    ['round trips per converged host', (last.roundTrips / n).toFixed(1), '≤ 2'],
    [`first provisioning of ${n} fresh hosts (apt-bound, in-process)`, wallAndCpu([{ ms: first.wallMs, cpuMs: first.cpuMs }]), 'no slower than before (3 hosts: 60.6 s)'],
    ['commands per converged host', (last.commands / n).toFixed(1), '—'],
    ["hosts' CPU time per converged host (median)", cpu.length ? `${Math.round(median(cpu))} ms` : 'unmeasured (no cgroup2 usage)', '—'],
    [`controller peak RSS, ${n} hosts in-process`, `${Math.round(Math.max(...runsIn.map((r) => r.peakRssMb)))} MB`, '—'],
    ['`--help`, whole process (median)', wallAndCpu(help), '≤ 0.4 s'],
    ['`--help` through `node --import tsx` (no npx, no tsx CLI; median)', wallAndCpu(helpNode), '—'],
    ['start to first connection, whole process (median)', s(firstConnection), '—'],
    ['floor: `npx tsx -e ""` (median)', wallAndCpu(tsxFloor), '—'],
    ['floor: `node -e ""` (median)', wallAndCpu(nodeFloor), '—'],
    ["the hosts' own idle load before measuring", `${(idle * 100).toFixed(1)} % of a core`, '—'],
  ];
}

/** The large-fleet figure: converged tasks/baseline.ts in-process on every host at once, median of `runs`. */
async function fleetFigures(labs: readonly BenchLab[], runs: number, dir: string): Promise<Row[]> {
  const n = labs.reduce((sum, l) => sum + l.hosts.length, 0);
  const key = (await readFile(`${(labs[0] as BenchLab).privateKeyPath}.pub`, 'utf8')).trim();
  const inventory = await labInventory(dir, labs, () => ({ deployKeys: [key] }));
  await converge(inventory, 'baseline', n);
  const idle = await settle(labs);
  const { measured, hostCpu: cpu } = await convergedRuns(labs, inventory, 'baseline', runs);
  // The machine's speed at the time, to compare runs made at different times.
  const nodeFloor = await warmThenRepeat(runs, () => timed('node', ['-e', '']));
  const last = measured.at(-1) as InProcess;
  return [
    [`${n} hosts, converged baseline, in-process wall (median of ${runs})`, wallAndCpu(measured.map((r) => ({ ms: r.wallMs, cpuMs: r.cpuMs }))), '≤ 6 s'],
    [`${n} hosts, controller peak RSS (largest of ${runs})`, `${Math.round(Math.max(...measured.map((r) => r.peakRssMb)))} MB`, '≤ 200 MB'],
    [`${n} hosts, channels / round trips per host`, `${(last.channels / n).toFixed(1)} / ${(last.roundTrips / n).toFixed(1)}`, '1 / ≤ 2'],
    ["hosts' CPU time per converged host (median)", cpu.length ? `${Math.round(median(cpu))} ms` : 'unmeasured (no cgroup2 usage)', '—'],
    ["the hosts' own idle load before measuring", `${(idle * 100).toFixed(1)} % of a core`, '—'],
    ['floor: `node -e ""` (median)', wallAndCpu(nodeFloor), '—'],
  ];
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { hosts: { type: 'string', default: '10' }, runs: { type: 'string', default: '5' }, lab: { type: 'string' } } });
  const hosts = Number(values.hosts);
  const runs = Number(values.runs);
  if (!Number.isInteger(hosts) || hosts < 1 || !Number.isInteger(runs) || runs < 1) throw new Error('--hosts and --runs take whole numbers ≥ 1');
  const dir = await mkdtemp(join(tmpdir(), 'tackle-bench-'));
  // The inventories written here load as ES modules, as a project's own inventory.ts does (a
  // directory without "type": "module" would load them as CommonJS: tackle's modules twice).
  await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
  await mkdir(join(dir, 'tmp'));
  const { labs, down } = await startLabs(hosts, values.lab === undefined ? undefined : Number(values.lab));
  try {
    const rows = hosts > 10 ? await fleetFigures(labs, runs, dir) : await provisionFigures(labs, runs, dir);
    const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
    console.log(`| figure | measured | target |\n| --- | --- | --- |\n${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}`);
    console.log(`\n(load average at the end: ${load}; ${new Date().toISOString()})`);
  } finally {
    await down();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--measure') {
  process.stdout.write(JSON.stringify(await measure(process.argv[3] ?? '', process.argv[4] ?? '', Number(process.argv[5]))));
} else {
  await main(process.argv.slice(2)).catch((err: Error) => {
    console.error(err.message);
    process.exitCode = 1;
  });
}
