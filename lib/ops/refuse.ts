import { TackleError } from '../errors.ts';

/**
 * The one way an operation refuses: bad input when it is built (a relative path, an unknown
 * setting), or, when planning, a host it will not touch (a directory where a file belongs, a
 * setting another file would override). A TackleError of phase `operation` whose reason starts
 * with the operation, so a refusal in a task body says what refused even before a step exists;
 * the runner adds host and step. Failures found while applying are not refusals: they carry the
 * command, exit code and stderr of what failed.
 *
 * @example
 * if (!path.startsWith('/')) throw refuse('files.file', `path must be absolute, got ${JSON.stringify(path)}`);
 */
export function refuse(op: string, reason: string): TackleError {
  return new TackleError({ phase: 'operation', reason: `${op}: ${reason}` });
}
