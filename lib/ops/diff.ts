// The one way plans show what a file write changes.
import { jsdiff } from '../lazy.ts';

/**
 * The unified diff a plan shows for one file: `before` is undefined for a file that does not
 * exist yet (its old name is then /dev/null); headers carry names only, no dates. With `mask`,
 * both sides are masked first (secret values as `***`), and a change that only the masked parts
 * make is said, not shown. Unusual names are quoted C-style, as git does.
 *
 * @example
 * fileDiff('/etc/app.conf', 'a=0\n', 'a=1\n') // '--- /etc/app.conf\n+++ /etc/app.conf\n@@ -1,1 +1,1 @@\n-a=0\n+a=1\n'
 * fileDiff(path, old, next, { mask: (text) => text.replace(/^(token = ).*$/gm, '$1***') })
 */
export function fileDiff(path: string, before: string | undefined, after: string, opts: { mask?: (text: string) => string } = {}): string {
  const mask = opts.mask ?? ((text: string) => text);
  const patch = jsdiff().createTwoFilesPatch(before === undefined ? '/dev/null' : path, path, mask(before ?? ''), mask(after), undefined, undefined, { headerOptions: jsdiff().FILE_HEADERS_ONLY });
  if (opts.mask && !patch.includes('\n@@')) return diffNote(path, 'secret values changed (not shown)');
  return patch;
}

/**
 * What a plan shows instead of a diff it must not or cannot show (secret, binary or large content).
 *
 * @example diffNote('/etc/app/token', 'secret content changed (not shown)') // '/etc/app/token: secret content changed (not shown)\n'
 */
export function diffNote(path: string, note: string): string {
  return `${path}: ${note}\n`;
}
