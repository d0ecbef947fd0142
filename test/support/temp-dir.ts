import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

/**
 * A fresh directory `$TMPDIR/tackle-NAME-XXXXXX`, removed with its contents when the test file
 * ends: the removal is registered on the file's root test, so the directory outlives the subtest
 * (or helper) that made it, and no test leaves it behind.
 */
export function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `tackle-${name}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
