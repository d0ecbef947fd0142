// "Write in place, check the whole configuration, else restore": for configurations whose files
// mean nothing alone (an sshd drop-in, an nginx site and its link, a fail2ban jail), so the check
// (`sshd -t`, `nginx -t`, `fail2ban-client -t`) can only run with the new files where the program
// reads them. files.file's `validate` is the other kind: it checks the new file alone, before it
// replaces the old one.
import { posix } from 'node:path';
import { Command, sh } from '../command/command.ts';
import type { Change } from './operation.ts';

/** Commands around an in-place change of some paths; see {@link previousVersions}. */
export interface PreviousVersions {
  /** Copies each path (a symlink as a link) to a hidden `.NAME.tackle-prev` beside it; a missing path is remembered as missing. */
  save: Command;
  /** Puts each previous version back, or removes the path when there was none. */
  restore: Command;
  /** Removes the copies once the new versions are accepted. */
  forget: Command;
  /** Runs `check` on the whole configuration; when it fails, restores and fails with the check's output. */
  checkOrRestore(check: Command): Command;
}

/**
 * The previous versions of configuration paths, kept beside them under hidden names that no
 * `*.conf`/`*.local`/`sites-enabled/*` include matches, so a check of the WHOLE configuration
 * with the new versions in place can put the old ones back.
 *
 * @example
 * const prev = previousVersions(['/etc/ssh/sshd_config.d/00-tackle.conf']);
 * actions: [{ command: prev.save }, ...write.actions, { command: prev.checkOrRestore(sh`sshd -t`) }] // prev.restore later, if a login fails
 */
export function previousVersions(paths: readonly string[]): PreviousVersions {
  const pairs = paths.map((path) => ({ path, prev: posix.join(posix.dirname(path), `.${posix.basename(path)}.tackle-prev`) }));
  // `-e` follows links: a dangling link is still there, and kept.
  const exists = (p: string) => sh`{ [ -e ${p} ] || [ -L ${p} ]; }`;
  const restore = Command.join(
    pairs.map(({ path, prev }) => sh`if ${exists(prev)}; then mv -fT -- ${prev} ${path}; else rm -f -- ${path}; fi`),
    '; ',
  );
  const named = paths.join(' and ');
  return {
    save: Command.join(pairs.map(({ path, prev }) => sh`rm -f -- ${prev} && if ${exists(path)}; then cp -P -p -- ${path} ${prev}; fi`), ' && '),
    restore,
    forget: sh`rm -f -- ${pairs.map((p) => p.prev)}`,
    checkOrRestore: (check) =>
      sh`if ! tackle_out=$(PATH="$PATH:/usr/sbin:/sbin"; ${check} 2>&1 </dev/null); then ${restore}; printf 'tackle: %s rejected the new %s; the previous version is back in place:\\n%s\\n' ${check.toString()} ${named} "$tackle_out" >&2; exit 1; fi`,
  };
}

/**
 * `change` (its actions write `paths` in place) made safe for a configuration checked as a
 * whole: the previous versions are kept, `check` runs after the actions, and when it fails
 * the previous versions are back and the step fails with the check's output.
 *
 * @example
 * replaceChecked(part(files.file({ path: '/etc/fail2ban/jail.d/sshd.local', content })), ['/etc/fail2ban/jail.d/sshd.local'], sh`fail2ban-client -t`)
 */
export function replaceChecked(change: Change, paths: readonly string[], check: Command): Change {
  const prev = previousVersions(paths);
  return { ...change, actions: [{ command: prev.save }, ...change.actions, { command: Command.join([prev.checkOrRestore(check), prev.forget], '\n') }] };
}
