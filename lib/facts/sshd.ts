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

// sudo may reset the environment, so the variable is looked up in each ancestor's environ
// (readable as root) until one has it: the user's shell, sshd's session child.
const SESSION_SCRIPT = `p=$$
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

// One script: the effective values (base64, so sshd's own lines cannot confuse the parser)
// and the files, each as `file PATH64 CONTENT64`.
const CONFIG_SCRIPT = `PATH=$PATH:/usr/sbin:/sbin
if ! command -v sshd >/dev/null 2>&1; then echo missing; exit 0; fi
out=$(sshd -T 2>&1); rc=$?
printf 'effective %s ' "$rc"; printf '%s' "$out" | base64 -w0; echo
for f in ${SSHD_MAIN_CONFIG} ${SSHD_DROPIN_DIR}/*; do
  [ -f "$f" ] || continue
  printf 'file %s ' "$(printf '%s' "$f" | base64 -w0)"; base64 -w0 < "$f"; echo
done`;

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
  const head = /^effective (\d+) ?(\S*)$/.exec(lines[0] ?? '');
  if (!head) throw new Error(`unexpected output: ${JSON.stringify(stdout.slice(0, 200))}`);
  const text = Buffer.from(head[2] ?? '', 'base64').toString();
  const effective = head[1] === '0' ? ({ kind: 'valid', values: parseSshdT(text) } as const) : ({ kind: 'invalid', error: text.trim() } as const);
  const files = lines.slice(1).map((line) => {
    const m = /^file (\S+) ?(\S*)$/.exec(line);
    if (!m) throw new Error(`unexpected line: ${JSON.stringify(line.slice(0, 100))}`);
    return { path: Buffer.from(m[1] ?? '', 'base64').toString(), content: Buffer.from(m[2] ?? '', 'base64').toString() };
  });
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
