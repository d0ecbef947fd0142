// Views of the controller's own state (mounts, processes) read from /proc, so that teardown can
// find what a crashed run left behind without having recorded it.
import { readdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { check, delay } from './exec.ts';

interface Mount {
  point: string;
  fstype: string;
  superOptions: string[];
}

async function mountTable(): Promise<Mount[]> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  return mountinfo
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      // id parent major:minor root point options [optional fields...] - fstype source super-options
      const [before = '', after = ''] = line.split(' - ');
      const [fstype = '', , superOptions = ''] = after.split(' ');
      return { point: unescapeMountPath(before.split(' ')[4] ?? ''), fstype, superOptions: superOptions.split(',') };
    });
}

/** Every mount point in this process's mount namespace. */
export async function mounts(): Promise<string[]> {
  return (await mountTable()).map((m) => m.point);
}

/** Mount points at or below `dir`, deepest first (the order to unmount them in). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return (await mounts()).filter((point) => point === dir || point.startsWith(prefix)).sort((a, b) => b.length - a.length);
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/**
 * Unmounts everything at or below `dir`. A mount still busy (a process inside) is detached
 * lazily: it disappears from the tree now and is freed when its last user exits.
 */
export async function unmountUnder(dir: string): Promise<void> {
  for (const point of await mountsUnder(dir)) {
    await check('umount', [point]).catch(() => check('umount', ['--lazy', point]));
  }
}

/** A running process: its pid and argv. */
export interface ProcessInfo {
  pid: number;
  argv: string[];
}

/** Every process on the machine whose argv matches `predicate`. */
export async function findProcesses(predicate: (argv: string[]) => boolean): Promise<ProcessInfo[]> {
  const found: ProcessInfo[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = await processArgv(Number(entry));
    if (argv && predicate(argv)) found.push({ pid: Number(entry), argv });
  }
  return found;
}

/** The argv of `pid`, or undefined when it has exited (or is a zombie). */
export async function processArgv(pid: number): Promise<string[] | undefined> {
  const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return raw ? raw.replace(/\0$/, '').split('\0') : undefined;
}

/**
 * When `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat), or undefined when it
 * has exited. A pid together with its start time names one process even after the pid is reused.
 */
export async function processStartTime(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // The command name (field 2) may hold spaces and parentheses; the fields after it do not.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

/** Direct children of `pid`, from the kernel's per-thread child lists. */
export async function childPids(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => []);
  const lists = await Promise.all(tasks.map((task) => readFile(`/proc/${pid}/task/${task}/children`, 'utf8').catch(() => '')));
  return lists.flatMap((list) => list.split(' ').filter(Boolean).map(Number));
}

/** Sends `signal`, ignoring a process that is already gone. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Waits until `pid` has exited; SIGKILLs it if it is still there after `timeoutMs`. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<void> {
  if (await exitsWithin(pid, timeoutMs)) return;
  signal(pid, 'SIGKILL');
  await exitsWithin(pid, 2000);
}

async function exitsWithin(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (await processArgv(pid)) {
    if (Date.now() >= deadline) return false;
    await delay(20);
  }
  return true;
}

/**
 * Mount points of the cgroup hierarchies systemd tracks its units in: the v2 (unified) one and
 * the v1 `name=systemd` one, whichever this machine has.
 */
export async function systemdCgroupRoots(): Promise<string[]> {
  return (await mountTable())
    .filter((m) => m.fstype === 'cgroup2' || (m.fstype === 'cgroup' && m.superOptions.includes('name=systemd')))
    .map((m) => m.point);
}

/** The processes in a cgroup and every cgroup below it. */
export async function cgroupPids(dir: string): Promise<number[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const own = (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
  const below = await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => cgroupPids(join(dir, e.name))));
  return [...own, ...below.flat()];
}

/** The mount table a process sees (its mount namespace's), or '' once it is gone. */
export async function processMounts(pid: number): Promise<string> {
  return readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => '');
}

/**
 * Removes a cgroup and every cgroup below it. A cgroup is a directory of virtual files that only
 * rmdir removes, bottom-up, once no process is left in it (the last ones may still be exiting).
 */
export async function removeCgroup(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => undefined);
  if (!entries) return;
  for (const entry of entries) if (entry.isDirectory()) await removeCgroup(join(dir, entry.name));
  for (let attempt = 0; ; attempt++) {
    try {
      return await rmdir(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || attempt >= 100) throw err;
      await delay(20);
    }
  }
}
