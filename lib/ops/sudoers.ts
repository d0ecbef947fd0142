import type { CommonOptions, Operation } from './operation.ts';
import { files } from './files.ts';
import { refuse } from './refuse.ts';

/** A drop-in in /etc/sudoers.d. `name` is its file name, so the step name cannot be overridden. */
export type SudoerOptions = Omit<CommonOptions, 'name'> & {
  /** File name under /etc/sudoers.d: letters, digits, `_` and `-` only (see `users.sudoer`). */
  name: string;
} & (
    | { state?: 'present'; /** Rule lines, e.g. `deploy ALL=(ALL) NOPASSWD:ALL`. */ rules: readonly string[]; content?: never }
    | { state?: 'present'; /** The whole file. */ content: string; rules?: never }
    | { state: 'absent'; rules?: never; content?: never }
  );

// sudo silently skips files in sudoers.d whose names contain a dot or end in `~` (sudoers(5)):
// a rule in `deploy.conf` would never apply, so such names are refused.
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;

/**
 * Ensures a sudoers drop-in `/etc/sudoers.d/NAME` (mode 0440, root:root), checked with
 * `visudo -cf` on the new file before it replaces the old one, so a syntax error never
 * reaches sudo (which would then refuse every rule, including yours); or that it is absent.
 * Names with a dot or ending in `~` are refused: sudo ignores such files without a word.
 *
 * @example
 * await host.run(sudoer({ name: 'deploy', rules: ['deploy ALL=(ALL) NOPASSWD:ALL'] }));
 * await host.run(sudoer({ name: 'old-team', state: 'absent' }));
 */
export function sudoer(options: SudoerOptions): Operation {
  const { name } = options;
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw refuse('users.sudoer', `name ${JSON.stringify(name)} must be letters, digits, _ and - only (sudo ignores files in /etc/sudoers.d whose names contain a dot or end in ~)`);
  }
  const step = `users.sudoer ${name}`;
  const path = `/etc/sudoers.d/${name}`;
  if (options.state === 'absent') return files.file({ path, state: 'absent', name: step, notify: options.notify });
  return files.file({ path, content: sudoersContent(options, step), mode: '0440', owner: 'root', group: 'root', validate: 'visudo -cf %s', name: step, notify: options.notify });
}

function sudoersContent(o: { rules?: readonly string[]; content?: string }, step: string): string {
  if (o.rules !== undefined && o.content !== undefined) throw refuse(step, 'give rules or content, not both');
  if (o.content !== undefined) {
    if (typeof o.content !== 'string' || o.content.trim() === '') throw refuse(step, 'content must be a non-empty string');
    // sudo before 1.9 rejects a last line without its newline.
    return o.content.endsWith('\n') ? o.content : `${o.content}\n`;
  }
  if (!Array.isArray(o.rules) || o.rules.length === 0) throw refuse(step, 'rules must be a non-empty list of sudoers lines');
  for (const rule of o.rules as unknown[]) {
    if (typeof rule !== 'string' || rule.trim() === '' || /[\n\r\0]/.test(rule)) throw refuse(step, `each rule must be one non-empty line, got ${JSON.stringify(rule)}`);
  }
  return ['# Managed by tackle (users.sudoer); checked with visudo before it is installed.', ...o.rules.map((r) => r.trim()), ''].join('\n');
}
