// `tsx test/support/machine-unchanged.ts CMD ARGS…` runs CMD (the unit suite) and fails when it
// changed the accounts of the machine running it: unit tests leave that machine as it was; tests
// that need real accounts run on lab hosts (test/e2e).
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';

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
const result = spawnSync(command, args, { stdio: 'inherit' });
const changed = [...fingerprint()].filter(([file, digest]) => before.get(file) !== digest).map(([file]) => file);
if (changed.length > 0) {
  process.stderr.write(`error: the tests changed this machine's accounts (${changed.join(', ')}); a test that needs real accounts belongs in test/e2e on a lab host\n`);
  process.exitCode = 1;
} else {
  process.exitCode = result.status ?? 1;
}
