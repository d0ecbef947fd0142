// `tsx test/support/machine-unchanged.ts CMD ARGS…` runs CMD (the unit suite) and fails when it
// changed the accounts of the machine running it, or left temporary directories behind: unit tests
// leave that machine as it was; tests that need real accounts run on lab hosts (test/e2e).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ACCOUNT_FILES = ['/etc/passwd', '/etc/group', '/etc/shadow', '/etc/gshadow'];

/**
 * Inode and modification time per account file ('absent' when the machine has none): an account
 * created and deleted again leaves the same bytes, but the file was rewritten.
 */
function fingerprint(): Map<string, string> {
  const stamp = (file: string): string => {
    const st = statSync(file, { throwIfNoEntry: false, bigint: true });
    return st ? `${st.ino}:${st.mtimeNs}` : 'absent';
  };
  return new Map(ACCOUNT_FILES.map((file) => [file, stamp(file)]));
}

const [command, ...args] = process.argv.slice(2);
if (command === undefined) throw new TypeError('usage: machine-unchanged.ts COMMAND [ARGS…]');
const before = fingerprint();
// CMD gets a TMPDIR of its own: comparing the names in the shared /tmp before and after cannot tell
// this run's directories from those of a run going on at the same time (another checkout's unit or
// e2e suite), while everything in a private TMPDIR is this run's. Only tackle-* entries count: tools
// keep caches there too (tsx). The private directory goes away after, whatever it holds.
const runTmp = mkdtempSync(join(tmpdir(), 'tackle-unit-run-'));
const result = spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, TMPDIR: runTmp } });
const leftovers = readdirSync(runTmp).filter((name) => name.startsWith('tackle-'));
rmSync(runTmp, { recursive: true, force: true });
const changed = [...fingerprint()].filter(([file, digest]) => before.get(file) !== digest).map(([file]) => file);
const errors = [
  ...(changed.length > 0 ? [`the tests changed this machine's accounts (${changed.join(', ')}); a test that needs real accounts belongs in test/e2e on a lab host`] : []),
  ...(leftovers.length > 0 ? [`the tests left temporary directories behind (${leftovers.join(', ')}); make them with tempDir (test/support/temp-dir.ts), which removes them when the test file ends`] : []),
];
for (const error of errors) process.stderr.write(`error: ${error}\n`);
process.exitCode = errors.length > 0 ? 1 : (result.status ?? 1);
