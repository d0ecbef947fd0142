// `npm run lab -- <command>`: a lab of Debian hosts for people to try tackle against, beside the
// labs the tests start for themselves. See test/lab/lab.ts for what a lab is.
import { spawnSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { downAll, listLabs, startLab, writeInventory, type Lab } from '../test/lab/lab.ts';

const USAGE = `usage: npm run lab -- <command>
  up [HOSTS] [SUITE]     build the image if needed, start HOSTS hosts (default 3) of SUITE (bookworm,
                         the default, or trixie), write lab-inventory.ts
  down                   remove every lab on this machine (also those of crashed test runs) and lab-inventory.ts
  status                 list the labs and whether each host is running
  ssh [USER@]HOST [CMD]  log in to (or run CMD on) a host of the lab started by \`up\`; USER defaults to root`;

const inventoryFile = fileURLToPath(new URL('../lab-inventory.ts', import.meta.url));

/** A mistake in the command line: printed with the usage text. */
class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'up':
      return up(args);
    case 'down':
      await downAll({ log: (line) => console.log(line) });
      // It names keys and hosts that no longer exist.
      await rm(inventoryFile, { force: true });
      console.log('no labs left');
      return 0;
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
  const earlier = (await listLabs()).find((lab) => lab.keepAfterExit);
  if (earlier) throw new Error(`lab ${earlier.index} from an earlier \`up\` is still running; \`npm run lab -- down\` removes it`);

  // Started detached: the hosts and their proxy keep running after this command exits.
  const lab = await startLab({ hosts: count, keepAfterExit: true, image: { suite }, log: (line) => console.log(line) });
  await writeInventory(lab, inventoryFile);
  for (const host of lab.hosts) console.log(`  ${host.name.padEnd(8)} ${host.address}`);
  console.log(`inventory: ${inventoryFile}`);
  console.log(`log in:    npm run lab -- ssh ${lab.hosts[0]?.name ?? 'HOST'}   (users root, admin, ops)`);
  console.log('remove:    npm run lab -- down');
  return 0;
}

async function status(): Promise<number> {
  const labs = await listLabs();
  if (labs.length === 0) console.log('no labs running');
  for (const lab of labs) {
    console.log(`lab ${lab.index} (${lab.keepAfterExit ? 'from `up`' : 'of a test run'}): bridge ${lab.bridgeAddress}, proxy ${lab.proxyUrl}`);
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

/** The lab of `up`, or the only lab there is. */
async function upLab(): Promise<Lab> {
  const labs = await listLabs();
  const lab = labs.find((l) => l.keepAfterExit) ?? (labs.length === 1 ? labs[0] : undefined);
  if (!lab) throw new Error(labs.length === 0 ? 'no lab is running; `npm run lab -- up` starts one' : 'several test labs are running and none from `up`');
  return lab;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    console.error(err instanceof UsageError ? `${err.message}\n${USAGE}` : err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  },
);
