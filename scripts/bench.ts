// npm run bench: a converged tasks/baseline.ts (every core operation, already applied) on 1, 3
// and 10 lab hosts. Prints, per size: wall time, SSH channels opened and commands sent per host,
// and the controller's peak RSS. Each size is measured in a fresh child process so that its peak
// RSS is its own. Needs root (the lab); it starts and removes its own lab hosts.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openConnection } from '../lib/connection/open.ts';
import type { Connection } from '../lib/connection/connection.ts';
import { runTask } from '../lib/engine/runner.ts';
import { selectHosts } from '../lib/inventory/select.ts';
import { isInventory } from '../lib/inventory/inventory.ts';
import { baseline } from '../tasks/baseline.ts';
import { startLab, writeInventory } from '../lab/lab.ts';

const SIZES = [1, 3, 10];

interface Figures {
  hosts: number;
  wallMs: number;
  changed: number;
  failed: number;
  channelsPerHost: number;
  commandsPerHost: number;
  peakRssMb: number;
}

/** Child mode: one converged run over the first `n` hosts, figures as JSON on stdout. */
async function measure(inventoryFile: string, n: number): Promise<Figures> {
  const mod = (await import(inventoryFile)) as { default: unknown };
  if (!isInventory(mod.default)) throw new Error(`${inventoryFile} is not an inventory`);
  const inventory = mod.default;
  const hosts = selectHosts(inventory).slice(0, n);
  const conns: Connection[] = [];
  const ctx = { home: process.env.HOME ?? '/root', localUser: 'root' };
  const t0 = performance.now();
  const result = await runTask(baseline, hosts, {
    concurrency: 10,
    connect: async (h) => {
      const c = await openConnection(h, inventory, ctx);
      conns.push(c);
      return c;
    },
  });
  const wallMs = performance.now() - t0;
  const steps = result.hosts.flatMap((h) => h.steps);
  const total = (k: 'channels' | 'commands') => conns.reduce((sum, c) => sum + c.stats()[k], 0);
  return {
    hosts: n,
    wallMs: Math.round(wallMs),
    changed: steps.filter((s) => s.status === 'changed').length,
    failed: result.hosts.filter((h) => h.status === 'failed' || h.status === 'unreachable').length,
    channelsPerHost: total('channels') / n,
    commandsPerHost: total('commands') / n,
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

function child(inventoryFile: string, n: number): Promise<Figures> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--measure', inventoryFile, String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as Figures) : reject(new Error(`measure ${n} exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const lab = await startLab({ hosts: Math.max(...SIZES), log: (l) => console.error(l) });
  try {
    const key = (await readFile(`${lab.privateKeyPath}.pub`, 'utf8')).trim();
    const inventory = join(await mkdtemp(join(tmpdir(), 'tackle-bench-')), 'inventory.ts');
    await writeInventory(lab, inventory, { overrides: Object.fromEntries(lab.hosts.map((h) => [h.name, { vars: { deployKeys: [key] } }])) });
    console.error('converging all hosts once (installs packages through the lab proxy)…');
    const first = await child(inventory, Math.max(...SIZES));
    if (first.failed > 0) throw new Error(`the converging run failed on ${first.failed} host(s)`);
    console.error(`converged in ${(first.wallMs / 1000).toFixed(1)} s`);
    const rows = [];
    for (const n of SIZES) rows.push(await child(inventory, n));
    console.log('hosts  wall      changed  channels/host  commands/host  peak RSS');
    for (const r of rows) {
      console.log(
        `${String(r.hosts).padEnd(6)} ${`${(r.wallMs / 1000).toFixed(2)} s`.padEnd(9)} ${String(r.changed).padEnd(8)} ${r.channelsPerHost.toFixed(1).padEnd(14)} ${r.commandsPerHost.toFixed(1).padEnd(14)} ${r.peakRssMb} MB`,
      );
    }
    const ten = rows.find((r) => r.hosts === 10);
    if (ten) console.log(`target: 10 converged hosts within 3 s wall — ${ten.wallMs <= 3000 ? 'met' : 'NOT met'} (${(ten.wallMs / 1000).toFixed(2)} s)`);
    if (rows.some((r) => r.changed > 0 || r.failed > 0)) throw new Error('a measured run was not converged (changed or failed steps)');
  } finally {
    await lab.down();
  }
}

if (process.argv[2] === '--measure') {
  process.stdout.write(JSON.stringify(await measure(process.argv[3] ?? '', Number(process.argv[4]))));
} else {
  await main().catch((err: Error) => {
    console.error(err.message);
    process.exitCode = 1;
  });
}
