// Helpers shared by planning tests: fact values and refusals.
import { Buffer } from 'node:buffer';
import { TackleError } from '../../lib/errors.ts';
import { sha256Hex, type PathInfo } from '../../lib/facts/files.ts';

/** The pathInfo fact of a root-owned 0644 file holding `content`. */
export function fileInfo(content: string): PathInfo {
  const bytes = Buffer.from(content);
  return { kind: 'file', mode: '0644', owner: 'root', group: 'root', uid: 0, gid: 0, size: bytes.length, sha256: sha256Hex(bytes), content: bytes.toString('base64') };
}

/** The reason of the planning-time refusal (a TackleError of phase `operation`) that `fn` throws. */
export function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof TackleError && err.phase === 'operation') return err.reason;
    throw err;
  }
  throw new Error('expected a refusal');
}
