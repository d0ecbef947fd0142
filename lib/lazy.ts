// Heavy dependencies load at their first use, not when lib/index.ts is imported: every task file
// imports the whole API, and `--help`, or a run that never shows a diff, should not pay for them.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * A dependency loaded at the first call, synchronously through Node's CommonJS loader (which keeps
 * it for later calls): for points of use that cannot await, such as planners. Where the caller can
 * await, `await import()` does the same.
 *
 * @example
 * const diff = lazyRequire<typeof import('diff')>('diff');
 * diff().createTwoFilesPatch('a', 'a', 'x\n', 'y\n');
 */
export function lazyRequire<T>(id: string): () => T {
  return () => require(id) as T;
}

/** jsdiff, for planners that show a file change as a unified diff. */
export const jsdiff = lazyRequire<typeof import('diff')>('diff');

/** cron-parser, for the schedule ops that check and translate cron expressions. */
export const cronParser = lazyRequire<typeof import('cron-parser')>('cron-parser');
