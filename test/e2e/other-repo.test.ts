// tackle used from another repository, as its users do: a fresh project with its own package.json
// installs tackle from an `npm pack` tarball of this checkout, writes inventory.ts and a task that
// import from 'tackle', and runs the task with `npx tsx` and with `npx tackle`. The file the task
// writes is then read on the lab host. A project that is not ESM gets one line saying what to change.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import type { JsonReport } from '../../lib/engine/report.ts';
import { run, type RunResult } from '../../lab/exec.ts';
import { withLab } from '../../lab/lab.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const MOTD = 'managed from the infra repository\n';
const TIMEOUT = 300_000;

/** Runs a command in `dir` (GNU env's -C), as a person typing it in that project would. */
const inDir = (dir: string, argv: readonly string[]): Promise<RunResult> => run('env', ['-C', dir, ...argv], { timeoutMs: TIMEOUT });

const task = (content: string) => `import { defineTask, files, runIfMain, v } from 'tackle';

export const motd = defineTask({
  name: 'motd',
  vars: { motd: v.string() },
  async run(host) {
    await host.run(files.file({ path: '/etc/motd', content: host.vars.motd + ${JSON.stringify(content)} }));
  },
});

await runIfMain(import.meta, motd);
`;

async function installTackle(): Promise<string> {
  const project = await mkdtemp(join(tmpdir(), 'tackle-infra-'));
  const packed = await run('npm', ['pack', '--silent', '--pack-destination', project, ROOT], { timeoutMs: TIMEOUT });
  if (packed.code !== 0) throw new Error(`npm pack failed: ${packed.stderr}`);
  const tarball = (await readdir(project)).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack wrote no tarball');
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'infra', private: true, type: 'module' }, null, 2));
  // TypeScript too, to type-check the project as its editor would, at the version tackle is checked with.
  const { devDependencies } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  const installed = await inDir(project, ['npm', 'install', '--no-audit', '--no-fund', '--prefer-offline', `./${tarball}`, `typescript@${devDependencies.typescript}`]);
  if (installed.code !== 0) throw new Error(`npm install of the tarball failed: ${installed.stderr}`);
  return project;
}

const [lab, project] = await Promise.all([withLab(t, 1), installTackle()]);
t.teardown(() => rm(project, { recursive: true, force: true }));
const host = lab.hosts[0];
if (!host) throw new Error('no lab host');
await writeFile(
  join(project, 'inventory.ts'),
  `import { defineInventory } from 'tackle';

export default defineInventory({
  vars: { motd: 'hello' },
  hosts: { ${host.name}: { address: ${JSON.stringify(host.address)}, user: 'root',
    privateKeyPath: ${JSON.stringify(lab.privateKeyPath)}, knownHostsPath: ${JSON.stringify(lab.knownHostsPath)} } },
});
`,
);
await mkdir(join(project, 'tasks'));
await writeFile(join(project, 'tasks/motd.ts'), task(`, ${MOTD}`));
const motdOnHost = async () => (await lab.ssh(host.name, 'base64 -w0 /etc/motd')).stdout;
const expected = Buffer.from(`hello, ${MOTD}`).toString('base64');

t.test('the package holds the library and the launcher, not the repository', async (t) => {
  const pkg = JSON.parse(await readFile(join(project, 'node_modules/tackle/package.json'), 'utf8')) as { exports: Record<string, string> };
  t.equal(pkg.exports['.'], './lib/index.ts');
  const top = (await readdir(join(project, 'node_modules/tackle'))).sort();
  t.same(top.filter((f) => !['README.md', 'LICENSE'].includes(f)), ['bin', 'lib', 'package.json'], 'no tests, tasks, scripts or inventory.ts');
});

t.test('npx tsx tasks/motd.ts in the other project writes the file on the host; npx tackle finds it converged', async (t) => {
  const first = await inDir(project, ['npx', 'tsx', 'tasks/motd.ts', '--json', 'first.json']);
  t.equal(first.code, 0, 'exit code', { stdout: first.stdout, stderr: first.stderr });
  t.equal(await motdOnHost(), expected, 'the bytes of /etc/motd on the host');
  const firstReport = JSON.parse(await readFile(join(project, 'first.json'), 'utf8')) as JsonReport;
  t.equal(firstReport.hosts[0]?.status, 'changed');

  const second = await inDir(project, ['npx', 'tackle', 'tasks/motd.ts', '--json', 'second.json']);
  t.equal(second.code, 0, 'exit code through the launcher', { stdout: second.stdout, stderr: second.stderr });
  const report = JSON.parse(await readFile(join(project, 'second.json'), 'utf8')) as JsonReport;
  t.same(report.hosts.map((h) => [h.name, h.status]), [[host.name, 'ok']], 'the second run changed nothing');
});

t.test('types reach the other project: its inventory and tasks type-check, a misuse does not', async (t) => {
  await writeFile(
    join(project, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2023', module: 'NodeNext', strict: true, noEmit: true, allowImportingTsExtensions: true, skipLibCheck: true }, include: ['inventory.ts', 'tasks'] }),
  );
  await writeFile(
    join(project, 'tasks/typed.ts'),
    `import { defineTask, files, v } from 'tackle';

export const typed = defineTask({
  name: 'typed',
  vars: { motd: v.string(), port: v.number().default(22) },
  async run(host) {
    const port: number = host.vars.port;
    // @ts-expect-error motd is a string
    const motd: number = host.vars.motd;
    // @ts-expect-error files.file has no 'contents'
    await host.run(files.file({ path: '/etc/motd', contents: String(motd + port) }));
  },
});
`,
  );
  const tsc = await inDir(project, ['npx', 'tsc', '--noEmit']);
  t.equal(tsc.code, 0, 'npx tsc --noEmit', { stdout: tsc.stdout, stderr: tsc.stderr });
});

t.test('a missing inventory is named as typed and as resolved', async (t) => {
  const r = await inDir(project, ['npx', 'tackle', 'tasks/motd.ts', '--inventory', 'missing.ts']);
  t.equal(r.code, 1);
  t.equal(r.stderr, `error: cannot load inventory missing.ts (${join(project, 'missing.ts')}): the file does not exist\n`);
});

t.test('a task in a project that is not ESM gets one line saying what to change, and nothing runs', async (t) => {
  // A sub-project without "type": "module": Node loads its .ts files as CommonJS, where the task's
  // top-level await cannot compile. It resolves 'tackle' from the parent's node_modules.
  const legacy = join(project, 'legacy');
  await mkdir(join(legacy, 'tasks'), { recursive: true });
  await writeFile(join(legacy, 'package.json'), JSON.stringify({ name: 'legacy', version: '1.0.0' }));
  await writeFile(join(legacy, 'tasks/motd.ts'), task(', from legacy\n'));
  const r = await inDir(project, ['npx', 'tackle', 'legacy/tasks/motd.ts']);
  t.equal(r.code, 1);
  t.equal(
    r.stderr,
    `error: legacy/tasks/motd.ts would load as CommonJS, where the top-level await of a tackle task cannot run: ${join(legacy, 'package.json')} has no "type": "module"; run \`npm pkg set type=module\` in ${legacy}, or rename the file to .mts\n`,
  );
  t.notMatch(r.stderr, /esbuild|Transform failed|cjs output format/);
  t.equal(await motdOnHost(), expected, '/etc/motd on the host is untouched');

  const mts = await inDir(project, ['sh', '-c', 'cp legacy/tasks/motd.ts legacy/tasks/motd.mts && npx tackle legacy/tasks/motd.mts --dry-run']);
  t.equal(mts.code, 0, 'the same file named .mts runs', { stdout: mts.stdout, stderr: mts.stderr });
  t.match(mts.stdout, /would change/);
});
