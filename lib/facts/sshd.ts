import { Buffer } from 'node:buffer';
import { raw, sh } from '../command/command.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

/** sshd's main configuration file on Debian and Ubuntu. */
export const SSHD_MAIN_CONFIG = '/etc/ssh/sshd_config';
/** The drop-in directory the main file includes (first thing in it, on Debian 12 and Ubuntu 22.04+). */
export const SSHD_DROPIN_DIR = '/etc/ssh/sshd_config.d';

/**
 * The SSH session tackle's own commands arrive through, from `SSH_CONNECTION`:
 * which address the controller connects from and which server port it reached.
 */
export type SshSession =
  /** Not over SSH (a local connection), or the variable was not found. */
  | { kind: 'none' }
  | { kind: 'ssh'; clientAddress: string; clientPort: number; serverAddress: string; serverPort: number };

// The shell's own SSH_CONNECTION when it has one (without sudo, it has sshd's); sudo may reset
// the environment, so else the variable is looked up in each ancestor's environ (readable as
// root) until one has it: the user's shell, sshd's session child.
const SESSION_SCRIPT = `if [ -n "\${SSH_CONNECTION:-}" ]; then echo "ssh $SSH_CONNECTION"; exit 0; fi
p=$$
while [ -n "$p" ] && [ "$p" -gt 1 ]; do
  c=$(tr '\\000' '\\n' < "/proc/$p/environ" 2>/dev/null | sed -n 's/^SSH_CONNECTION=//p')
  if [ -n "$c" ]; then echo "ssh $c"; exit 0; fi
  p=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$p/status" 2>/dev/null)
done
echo none`;

/**
 * Where tackle's own SSH session comes from and which port it reached. Operations that
 * could cut that session off (an sshd port change, enabling a firewall) plan against it.
 *
 * @example
 * const s = await host.fact(sshSession);
 * if (s.kind === 'ssh') console.log(`connected to port ${s.serverPort} from ${s.clientAddress}`);
 */
export const sshSession: Fact<SshSession> = defineFact('sshd.session', sh`${raw(SESSION_SCRIPT)}`, parseSshSession, { reads: [] });

/**
 * Pure parser of the {@link sshSession} script: `ssh CLIENT CPORT SERVER SPORT` or `none`.
 *
 * @example parseSshSession({ stdout: 'ssh 10.0.0.1 50522 10.0.0.11 22\n', stderr: '', exitCode: 0 }) // { kind: 'ssh', serverPort: 22, … }
 */
export function parseSshSession({ stdout }: FactOutput): SshSession {
  const words = stdout.trim().split(/\s+/);
  if (words[0] !== 'ssh' || words.length !== 5) return { kind: 'none' };
  const [, clientAddress = '', clientPort, serverAddress = '', serverPort] = words;
  const cport = Number(clientPort);
  const sport = Number(serverPort);
  if (!Number.isInteger(cport) || !Number.isInteger(sport)) return { kind: 'none' };
  return { kind: 'ssh', clientAddress, clientPort: cport, serverAddress, serverPort: sport };
}

/** One configuration file of sshd: the main file or a file in {@link SSHD_DROPIN_DIR}. */
export interface SshdConfigFile {
  path: string;
  content: string;
}

/** sshd's configuration as the host has it now. */
export type SshdConfig =
  /** No sshd binary (openssh-server not installed). */
  | { kind: 'missing' }
  | {
      kind: 'sshd';
      /**
       * `sshd -T`: effective global values, keyword (lower case) → values in order (one per
       * line sshd printed; `port`, `allowusers`… have several). `invalid` when the current
       * configuration does not load.
       */
      effective: { kind: 'valid'; values: Readonly<Record<string, readonly string[]>> } | { kind: 'invalid'; error: string };
      /** The main file and every regular file in the drop-in directory, for include-order reasoning. */
      files: readonly SshdConfigFile[];
    };

// One script, with few processes (a converged run reads this on every host): a line
// `effective RC SIZE…` (sshd -T's exit code, the size of each file), then one base64 line
// holding sshd -T's output and the files' paths, each NUL-ended, and the files' bytes one after
// the other. base64, so that sshd's own lines cannot confuse the parser.
const CONFIG_SCRIPT = `PATH=$PATH:/usr/sbin:/sbin
if ! command -v sshd >/dev/null 2>&1; then echo missing; exit 0; fi
out=$(sshd -T 2>&1); rc=$?
set --
for f in ${SSHD_MAIN_CONFIG} ${SSHD_DROPIN_DIR}/*; do [ -f "$f" ] && set -- "$@" "$f"; done
printf 'effective %s' "$rc"; [ $# = 0 ] || printf ' %s' $(stat -c %s -- "$@"); echo
{ printf '%s\\0' "$out" "$@"; [ $# = 0 ] || cat -- "$@"; } | base64 -w0; echo`;

/**
 * sshd's effective configuration (`sshd -T`) and its files (main file and drop-ins).
 *
 * @example
 * const c = await host.fact(sshdConfig);
 * if (c.kind === 'sshd' && c.effective.kind === 'valid') console.log(c.effective.values.passwordauthentication);
 */
export const sshdConfig: Fact<SshdConfig> = defineFact('sshd.config', sh`${raw(CONFIG_SCRIPT)}`, parseSshdConfig, { reads: ['/etc/ssh/', '/usr/sbin/sshd'] });

/**
 * Pure parser of the {@link sshdConfig} script.
 *
 * @example parseSshdConfig({ stdout: 'missing\n', stderr: '', exitCode: 0 }) // { kind: 'missing' }
 */
export function parseSshdConfig({ stdout, stderr, exitCode }: FactOutput): SshdConfig {
  if (exitCode !== 0) throw new Error(`cannot read the sshd configuration (exit ${exitCode}): ${stderr.trim() || 'no error output'}`);
  const lines = stdout.split('\n').filter((l) => l !== '');
  if (lines[0] === 'missing') return { kind: 'missing' };
  const head = /^effective (\d+)((?: \d+)*)$/.exec(lines[0] ?? '');
  if (!head || lines.length > 2) throw new Error(`unexpected output: ${JSON.stringify(stdout.slice(0, 200))}`);
  const sizes = (head[2] ?? '').trim().split(' ').filter((n) => n !== '').map(Number);
  const bytes = Buffer.from(lines[1] ?? '', 'base64');
  // sshd -T's output and the paths, each NUL-ended, then the files' bytes.
  const texts: string[] = [];
  let at = 0;
  for (let i = 0; i <= sizes.length; i++) {
    const end = bytes.indexOf(0, at);
    if (end < 0) throw new Error(`unexpected output: ${JSON.stringify(stdout.slice(0, 200))}`);
    texts.push(bytes.subarray(at, end).toString());
    at = end + 1;
  }
  const text = texts[0] as string;
  const contentBytes = bytes.length - at;
  const effective = head[1] === '0' ? ({ kind: 'valid', values: parseSshdT(text) } as const) : ({ kind: 'invalid', error: text.trim() } as const);
  const files = sizes.map((size, i) => {
    const content = bytes.subarray(at, at + size).toString();
    at += size;
    return { path: texts[i + 1] as string, content };
  });
  if (at !== bytes.length) {
    throw new Error(`the configuration files gave ${contentBytes} bytes for sizes adding up to ${sizes.reduce((a, b) => a + b, 0)}: one changed while it was read`);
  }
  return { kind: 'sshd', effective, files };
}

/**
 * Pure parser of `sshd -T` output: `keyword value` lines, keywords lower case; a keyword
 * printed on several lines (port, allowusers, acceptenv…) keeps all its values in order.
 *
 * @example parseSshdT('port 22\nport 2222\npasswordauthentication no\n') // { port: ['22', '2222'], passwordauthentication: ['no'] }
 */
export function parseSshdT(text: string): Record<string, string[]> {
  const values: Record<string, string[]> = {};
  for (const line of text.split('\n')) {
    const m = /^(\S+) ?(.*)$/.exec(line.trimEnd());
    if (!m?.[1]) continue;
    (values[m[1]] ??= []).push(m[2] ?? '');
  }
  return values;
}
