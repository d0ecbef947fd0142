// The one command line: a task file's last line (`await runIfMain(import.meta, task)`), the report
// on stdout with `--json -`, a program's output flags, and the one exit-code table.
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { parseCliArgs, usage } from '../../../lib/cli/args.ts';
import { runCli, type CliOutput } from '../../../lib/cli/main.ts';
import { EXIT, EXIT_CODE_MEANINGS, type JsonReport } from '../../../lib/engine/report.ts';
import { defineTask } from '../../../lib/engine/task.ts';
import { v } from '../../../lib/inventory/vars.ts';
import { run } from '../../../lab/exec.ts';
import { tempDir } from '../../support/temp-dir.ts';

const ROOT = resolve(import.meta.dirname, '../../..');
const LIB = JSON.stringify(join(ROOT, 'lib/index.ts'));

/** A task file ending in the one line, and an inventory of this machine. */
async function taskFile(body: string, ending = 'await runIfMain(import.meta, task);'): Promise<{ file: string; inventory: string; dir: string }> {
  const dir = tempDir('entry');
  const file = join(dir, 'task.mts');
  await writeFile(file, `import { defineTask, files, runIfMain } from ${LIB};\nconst task = defineTask(${body});\n${ending}\n`);
  const inventory = join(dir, 'inventory.mts');
  await writeFile(inventory, `import { defineInventory } from ${LIB};\nexport default defineInventory({ hosts: { here: { connection: 'local' } } });\n`);
  return { file, inventory, dir };
}
const node = (file: string, ...args: string[]) => run(process.execPath, ['--import', 'tsx', file, ...args], { timeoutMs: 60_000 });

t.test('a task file ends in one line: flags, error style and exit codes are the CLI\'s', async (t) => {
  const { file, inventory, dir } = await taskFile(`{ name: 'motd', run: async (host) => { await host.run(files.file({ path: ${JSON.stringify(join(tmpdir(), 'no-such-dir-tackle', 'x'))}, content: 'x' })); } }`);
  const help = await node(file, '--help');
  t.equal(help.code, EXIT.ok);
  t.match(help.stdout, /--inventory FILE[\s\S]*Exit codes:\n {2}0 /);
  const wrong = await node(file, '--nope');
  t.equal(wrong.code, EXIT.usage);
  t.match(wrong.stderr, /^Unknown option '--nope'/);
  const missing = await node(file, '--inventory', join(dir, 'none.ts'));
  t.equal(missing.code, EXIT.usage);
  t.match(missing.stderr, /^error: /);
  const failed = await node(file, '--inventory', inventory, '--json', join(dir, 'report.json'));
  t.equal(failed.code, EXIT.failed, 'the step fails: its directory does not exist');
  t.match(JSON.parse(await readFile(join(dir, 'report.json'), 'utf8')), { task: 'motd', summary: { failed: 1 } });
});

t.test("a script's own main ends in the same line; importing a program runs nothing", async (t) => {
  const { file } = await taskFile(`{ name: 'x', run: async () => {} }`, `await runIfMain(import.meta, async (io) => { io.stdout.write(io.argv.join(' ')); return 7; });`);
  const r = await node(file, 'a', 'b');
  t.equal(r.code, 7);
  t.equal(r.stdout, 'a b');
  const importer = join(tempDir('entry'), 'import.mts');
  await writeFile(importer, `await import(${JSON.stringify(file)});\nprocess.stdout.write('imported');\n`);
  const imported = await node(importer, '--help');
  t.equal(imported.code, 0);
  t.equal(imported.stdout, 'imported');
});

t.test('--json - writes the report alone on stdout; the view and recap go to stderr', async (t) => {
  const { inventory } = await taskFile(`{ name: 'x', run: async () => {} }`);
  const out = { stdout: '', stderr: '' };
  const stream = (key: 'stdout' | 'stderr') => ({ write: (s: string) => ((out[key] += s), true), isTTY: false }) as unknown as NodeJS.WriteStream;
  const found: string[] = [];
  const output: CliOutput = {
    flags: { note: { type: 'string', description: 'a note' } },
    render: (report) => `rendered ${report.task}\n`,
    finish: async (report, end) => (found.push(`${report.summary.ok} ${end.code} ${String(end.flags.note)}`), 5),
  };
  const task = defineTask({ name: 'quiet', run: async () => 'data' });
  const code = await runCli(task, { argv: ['--inventory', inventory, '--json', '-', '--note', 'hi'], cwd: '/', env: {}, stdout: stream('stdout'), stderr: stream('stderr') }, output);
  t.equal(code, 5, 'finish decides the exit code');
  t.same(found, ['1 0 hi']);
  t.match(JSON.parse(out.stdout) as JsonReport, { task: 'quiet', hosts: [{ name: 'here', status: 'ok', data: 'data' }] });
  t.match(out.stderr, /rendered quiet\n$/, 'render in place of the recap');
  t.notMatch(out.stderr, /RECAP/);
});

t.test("output flags are the program's, kept apart from vars, and listed by --help", async (t) => {
  const outputs = { prometheus: { type: 'string', description: 'metrics file' }, quiet: { type: 'boolean', description: 'say less' } } as const;
  const opts = parseCliArgs(['--prometheus', 'x.prom', '--var', 'a=1'], {}, outputs);
  t.same(opts.outputs, { prometheus: 'x.prom', quiet: undefined });
  t.same(opts.vars, { a: 1 }, 'not a var');
  t.throws(() => parseCliArgs(['--prometheus']), TypeError, 'unknown without the output flag');
  t.match(usage({}, {}, outputs), /Task options:\n {2}--prometheus STRING\s+metrics file\n {2}--quiet\s+say less/);
});

t.test("the README's exit-code table is the code's", async (t) => {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const section = /\n### Exit codes\n([\s\S]*?)\n(?=#)/.exec(readme)?.[1] ?? '';
  const rows = [...section.matchAll(/^\| (\d+) \| (.+) \|$/gm)].map((m) => ({ code: Number(m[1]), when: m[2] }));
  t.same(rows, EXIT_CODE_MEANINGS, 'one row per code, in order, in the same words');
  t.same(new Set(rows.map((r) => r.code)), new Set(Object.values(EXIT)), 'every exported code has a row');
});

t.test('vars the task does not declare: one warning on stderr before the run, carried by the JSON report; the exit code is the run\'s', async (t) => {
  const dir = tempDir('entry');
  const inventory = join(dir, 'inventory.mts');
  const hosts = "{ a: { connection: 'local', vars: { moot: 'x', backup: {} } }, b: { connection: 'local', vars: { backup: {} } } }";
  await writeFile(inventory, `import { defineInventory } from ${LIB};\nexport default defineInventory({ vars: { colour: 'red' }, hosts: ${hosts} });\n`);
  const task = defineTask({ name: 'motd', vars: { mood: v.string().default('calm') }, run: async () => {} });
  const cli = async (file: string, ...args: string[]) => {
    const out = { stdout: '', stderr: '' };
    const stream = (key: 'stdout' | 'stderr') => ({ write: (s: string) => ((out[key] += s), true), isTTY: false }) as unknown as NodeJS.WriteStream;
    const code = await runCli(task, { argv: ['--inventory', file, '--json', '-', ...args], cwd: '/', env: { NO_COLOR: '1' }, stdout: stream('stdout'), stderr: stream('stderr') });
    return { code, stderr: out.stderr, report: JSON.parse(out.stdout) as JsonReport };
  };
  const r = await cli(inventory);
  t.equal(r.code, EXIT.ok, 'a warning never changes the exit code');
  const message = "task motd ignores vars it does not declare: moot (a: did you mean mood?); colour, backup (every host). Vars of other tasks can be named in the inventory's sharedVars";
  t.equal(r.stderr.split('\n').filter((l) => l.includes('warning')).length, 1, 'one warning line for the run', { stderr: r.stderr });
  t.match(r.stderr, new RegExp(`^warning: ${message.replace(/[.()?]/g, '\\$&')}\n`), 'first, before the view');
  t.same(r.report.warnings, [
    { message, vars: [{ path: 'colour', hosts: ['a', 'b'] }, { path: 'moot', hosts: ['a'], suggestion: 'mood' }, { path: 'backup', hosts: ['a', 'b'] }] },
  ]);
  const shared = join(dir, 'shared.mts');
  await writeFile(shared, `import { defineInventory } from ${LIB};\nexport default defineInventory({ sharedVars: ['colour', 'backup'], vars: { colour: 'red' }, hosts: ${hosts} });\n`);
  const quiet = await cli(shared);
  t.same(quiet.report.warnings?.[0]?.vars.map((x) => x.path), ['moot'], "the inventory's sharedVars are left out");
  const given = await cli(shared, '--var', 'backup=x');
  t.same(given.report.warnings?.[0]?.vars.map((x) => x.path), ['moot', 'backup'], 'but not when given on the command line: that was meant for this run');
  const all = join(dir, 'all-shared.mts');
  await writeFile(all, `import { defineInventory } from ${LIB};\nexport default defineInventory({ sharedVars: ['colour', 'backup', 'moot'], vars: { colour: 'red' }, hosts: ${hosts} });\n`);
  const none = await cli(all);
  t.notMatch(none.stderr, /warning/);
  t.equal(none.report.warnings, undefined, 'no warnings, no field');
});
