// `npm run lab -- <command>`: a lab of Debian hosts for people to try tackle against, beside the
// labs the tests start for themselves. See lab/lab.ts for what a lab is.
import { spawnSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { CHECKOUT, downLeftovers, listLabs, startLab, STATE_ROOT, writeInventory, type Lab } from '../lab/lab.ts';

const USAGE = `usage: npm run lab -- <command>
  up [HOSTS] [SUITE]     build the image if needed, start HOSTS hosts (default 3) of SUITE (bookworm,
                         the default, or trixie), write lab-inventory.ts
  down [INDEX]           remove lab INDEX (see status); without INDEX, remove what this checkout left:
                         its \`up\` lab with lab-inventory.ts, and labs of its test runs that died.
                         Labs of other checkouts and of running tests are never touched
  status                 list every lab on this machine: index, checkout, who started it, hosts
  ssh [USER@]HOST [CMD]  log in to (or run CMD on) a host of this checkout's \`up\` lab; USER defaults to root`;

const inventoryFile = fileURLToPath(new URL('../lab-inventory.ts', import.meta.url));

/** A mistake in the command line: printed with the usage text. */
class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'up':
      return up(args);
    case 'down':
      return down(args);
    case 'status':
      return status();
    case 'ssh':
      return ssh(args);
    default:
      throw new UsageError(command ? `unknown command ${JSON.stringify(command)}` : 'no command given');
  }
}

async function up(args: string[]): Promise<number> {
  const count = Number(args[0] ?? 3);
  const suite = args[1] ?? 'bookworm';
  if (args.length > 2 || !Number.isInteger(count)) throw new UsageError(`up takes a number of hosts and a suite, got ${args.join(' ')}`);
  if (suite !== 'bookworm' && suite !== 'trixie') throw new UsageError(`the suite is bookworm or trixie, got ${JSON.stringify(suite)}`);
  const earlier = (await ownLabs()).find((lab) => lab.keepAfterExit);
  if (earlier) throw new Error(`lab ${earlier.index} from an earlier \`up\` in this checkout is still running; \`npm run lab -- down\` removes it`);

  // Started detached: the hosts and their proxy keep running after this command exits.
  const lab = await startLab({ hosts: count, keepAfterExit: true, image: { suite }, log: (line) => console.log(line) });
  await writeInventory(lab, inventoryFile);
  for (const host of lab.hosts) console.log(`  ${host.name.padEnd(8)} ${host.address}`);
  console.log(`inventory: ${inventoryFile}`);
  console.log(`log in:    npm run lab -- ssh ${lab.hosts[0]?.name ?? 'HOST'}   (users root, admin, ops)`);
  console.log('remove:    npm run lab -- down');
  return 0;
}

async function down(args: string[]): Promise<number> {
  const [arg, ...rest] = args;
  if (arg === undefined) {
    const removed = await downLeftovers({ log: (line) => console.log(line) });
    if (removed.some((lab) => lab.keepAfterExit)) await rm(inventoryFile, { force: true });
    console.log(removed.length === 0 ? 'nothing of this checkout to take down' : `took down ${removed.length} lab(s)`);
    return 0;
  }
  const index = Number(arg);
  if (rest.length > 0 || !/^\d+$/.test(arg)) throw new UsageError(`down takes one lab index, got ${args.join(' ')}`);
  const lab = (await listLabs()).find((l) => l.index === index);
  if (!lab) throw new Error(`no lab ${index} is recorded under ${STATE_ROOT}; \`npm run lab -- status\` lists them`);
  await lab.down();
  // This checkout's inventory names the keys and hosts of its `up` lab, which no longer exist.
  if (lab.keepAfterExit && lab.checkout === CHECKOUT) await rm(inventoryFile, { force: true });
  console.log(`lab ${index}: taken down`);
  return 0;
}

async function status(): Promise<number> {
  const labs = await listLabs();
  if (labs.length === 0) console.log('no labs running');
  for (const lab of labs) {
    const where = lab.checkout === CHECKOUT ? 'this checkout' : (lab.checkout ?? 'an unknown checkout');
    const run = lab.startedBy ? `pid ${lab.startedBy.pid}: ${lab.startedBy.command}` : 'unknown process';
    const who = lab.keepAfterExit ? 'from `up`' : `of a test run (${run})${(await lab.isOrphaned()) ? ' that died' : ''}`;
    console.log(`lab ${lab.index} (${who}, in ${where}): bridge ${lab.bridgeAddress}, proxy ${lab.proxyUrl}`);
    for (const host of lab.hosts) {
      console.log(`  ${host.name.padEnd(8)} ${host.address.padEnd(14)} ${(await lab.isRunning(host.name)) ? 'running' : 'stopped'}`);
    }
  }
  return 0;
}

async function ssh(args: string[]): Promise<number> {
  const [target, ...command] = args;
  if (!target) throw new UsageError('ssh needs a host');
  const [user, hostName] = target.includes('@') ? target.split('@', 2) : ['root', target];
  const lab = await upLab();
  const sshArgs = [...lab.sshArgs(hostName ?? '', { user }), ...(command.length > 0 ? ['--', command.join(' ')] : [])];
  return spawnSync('ssh', sshArgs, { stdio: 'inherit' }).status ?? 1;
}

/** The labs started from this checkout. */
async function ownLabs(): Promise<Lab[]> {
  return (await listLabs()).filter((lab) => lab.checkout === CHECKOUT);
}

/** This checkout's lab of `up`, or the only lab this checkout has. */
async function upLab(): Promise<Lab> {
  const labs = await ownLabs();
  const lab = labs.find((l) => l.keepAfterExit) ?? (labs.length === 1 ? labs[0] : undefined);
  if (!lab) throw new Error(labs.length === 0 ? 'this checkout runs no lab; `npm run lab -- up` starts one' : 'this checkout runs several test labs and none from `up`');
  return lab;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    console.error(err instanceof UsageError ? `${err.message}\n${USAGE}` : err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  },
);
