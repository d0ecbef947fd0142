#!/usr/bin/env node
// `tackle TASK.ts [flags]` runs a task file as `npx tsx TASK.ts [flags]` does, after checking that
// Node will load it as an ES module. Task files end in a top-level `await`; a .ts file in a package
// without "type": "module" is compiled to CommonJS, where esbuild stops with "Top-level await is
// currently not supported with the cjs output format" and no word on what to change. That error
// comes from compiling the task file, before any tackle code runs, so only a launcher can explain it.
// Plain JavaScript: it must start under Node without a TypeScript loader.
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, extname, join, resolve } from 'node:path';

const USAGE = 'usage: tackle TASK.ts [task flags…]   (runs the task file with tsx; TASK.ts --help lists its flags)';

/**
 * Why Node would load `file` as CommonJS, by its rules (extension, then the nearest package.json),
 * or undefined when it loads as an ES module.
 * @param {string} file absolute path
 * @returns {string | undefined}
 */
function commonJsReason(file) {
  const ext = extname(file);
  if (ext === '.mts' || ext === '.mjs') return undefined;
  if (ext === '.cts' || ext === '.cjs') return `its extension ${ext} makes it CommonJS; rename it to .ts or .mts`;
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    let text;
    try {
      text = readFileSync(pkg, 'utf8');
    } catch {
      if (dirname(dir) === dir) return 'no package.json above it says "type": "module"; create one with `npm init -y && npm pkg set type=module`, or rename the file to .mts';
      continue;
    }
    if (JSON.parse(text).type === 'module') return undefined;
    return `${pkg} has no "type": "module"; run \`npm pkg set type=module\` in ${dir}, or rename the file to .mts`;
  }
}

const [task, ...args] = process.argv.slice(2);
if (task === undefined || task === '--help' || task === '-h') {
  process.stderr.write(`${USAGE}\n`);
  process.exit(task === undefined ? 1 : 0);
}
const file = resolve(task);
if (!statSync(file, { throwIfNoEntry: false })?.isFile()) {
  process.stderr.write(`error: task file ${file === task ? task : `${task} (${file})`} does not exist\n`);
  process.exit(1);
}
const reason = commonJsReason(file);
if (reason !== undefined) {
  process.stderr.write(`error: ${task} would load as CommonJS, where the top-level await of a tackle task cannot run: ${reason}\n`);
  process.exit(1);
}

// tsx is tackle's own dependency; resolved from here, it is found whatever the project installed.
const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), file, ...args], { stdio: 'inherit' });
// Ctrl-C reaches the task through the terminal's process group; the task decides how to stop.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => {
  process.exitCode = code ?? 128 + (signal ? constants.signals[signal] : 0);
});
