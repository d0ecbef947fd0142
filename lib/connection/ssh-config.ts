/**
 * Resolves a host alias the way OpenSSH does, by asking OpenSSH: `ssh -G` evaluates Host/Match blocks,
 * Include, first-obtained-value-wins and defaults, and prints the result. Re-implementing those rules
 * would give a second, subtly different answer; parsing the output is the pure part.
 */
import { execFile } from 'node:child_process';

/** The settings tackle uses from a resolved OpenSSH client configuration. */
export interface ResolvedSshConfig {
  hostname: string;
  /** What ssh would log in as; `ssh -G` prints the local user name when no `User` applies. */
  user?: string;
  port: number;
  /**
   * In ssh's order, with `~`, `%d`, `%u`, `%h`, `%r`, `%p`, `%n` and `%%` expanded when their value
   * is known (see `ParseSshGOptions`); other tokens (`%C`, `%l`, `%L`, `%i`, `%k`) and `~user` stay
   * as written. Without any IdentityFile, these are OpenSSH's default key paths.
   */
  identityFiles: string[];
  /** Raw ProxyJump value (a comma-separated chain); absent when unset or `none`. Parse with `parseJumpSpec`. */
  proxyJump?: string;
  identitiesOnly: boolean;
  /** Seconds; absent when ssh has no timeout (`none`). */
  connectTimeout?: number;
  /** Seconds; absent when keepalives are off (`0`), so absence always means "disabled". */
  serverAliveInterval?: number;
}

/** Values `ssh -G` leaves unexpanded that only the caller knows (lib/ does not read the environment). */
export interface ParseSshGOptions {
  /** Local home directory, for `~` and `%d`; without it both stay as written. */
  home?: string;
  /** Local user name, for `%u`; without it `%u` stays as written. */
  localUser?: string;
}

/** One hop of a ProxyJump chain; an absent user or port means ssh's (config-resolved) default. */
export interface JumpHost {
  user?: string;
  host: string;
  port?: number;
}

/** How `resolveSshConfig` runs ssh; the `ParseSshGOptions` fields are passed on to `parseSshG`. */
export interface ResolveSshConfigOptions extends ParseSshGOptions {
  /** Passed as `-F`; note that OpenSSH then ignores /etc/ssh/ssh_config as well as ~/.ssh/config. */
  configFile?: string;
  /** Runs ssh with these arguments and resolves to its stdout; defaults to running the real `ssh`. */
  run?: (args: string[]) => Promise<string>;
}

/**
 * Parses `ssh -G` output (one `keyword value` per line, keywords lowercase).
 *
 * @example
 * parseSshG('host web\nhostname 10.0.0.5\nport 22\nidentitiesonly no\n').hostname // '10.0.0.5'
 */
export function parseSshG(output: string, opts: ParseSshGOptions = {}): ResolvedSshConfig {
  const values = new Map<string, string[]>();
  for (const raw of output.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const space = line.indexOf(' ');
    if (space <= 0) continue;
    const keyword = line.slice(0, space).toLowerCase();
    // The value is the rest of the line: ssh -G prints paths with spaces unquoted.
    values.set(keyword, [...(values.get(keyword) ?? []), line.slice(space + 1)]);
  }
  const first = (keyword: string): string | undefined => values.get(keyword)?.[0];

  const hostname = first('hostname');
  if (hostname === undefined || hostname === '') throw new Error('not ssh -G output: no "hostname" line');
  const port = parseNumber('port', first('port') ?? '22');
  if (port < 1 || port > 65535) throw new Error(`ssh -G printed an invalid port: ${port}`);
  const user = first('user');
  const alias = first('host') ?? hostname;
  const proxyJump = first('proxyjump');
  const timeout = first('connecttimeout');
  const keepalive = parseNumber('serveraliveinterval', first('serveraliveinterval') ?? '0');

  const tokens: Record<string, string | undefined> = {
    '%': '%',
    d: opts.home,
    u: opts.localUser,
    h: hostname,
    r: user,
    p: String(port),
    n: alias,
  };
  const expand = (path: string): string => {
    const withHome = opts.home !== undefined && /^~(\/|$)/.test(path) ? opts.home + path.slice(1) : path;
    return withHome.replace(/%(.)/g, (token, letter: string) => tokens[letter] ?? token);
  };

  return {
    hostname,
    ...(user !== undefined && user !== '' && { user }),
    port,
    identityFiles: (values.get('identityfile') ?? []).map(expand),
    ...(proxyJump !== undefined && proxyJump !== 'none' && { proxyJump }),
    identitiesOnly: first('identitiesonly') === 'yes',
    ...(timeout !== undefined && timeout !== 'none' && { connectTimeout: parseNumber('connecttimeout', timeout) }),
    ...(keepalive > 0 && { serverAliveInterval: keepalive }),
  };
}

function parseNumber(keyword: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new Error(`ssh -G printed a non-numeric ${keyword}: ${JSON.stringify(text)}`);
  return Number(text);
}

/**
 * Splits a ProxyJump value into hops, accepting what ssh_config(5) does: `[user@]host[:port]`,
 * `[ipv6]:port`, and `ssh://[user@]host[:port]` URIs, comma-separated. `none` gives no hops.
 *
 * @example
 * parseJumpSpec('admin@bastion:2200,ssh://db-gw') // [{ user: 'admin', host: 'bastion', port: 2200 }, { host: 'db-gw' }]
 */
export function parseJumpSpec(spec: string): JumpHost[] {
  if (spec.trim() === 'none') return [];
  return spec.split(',').map((hop) => parseHop(hop.trim(), spec));
}

function parseHop(hop: string, spec: string): JumpHost {
  const fail = (why: string): never => {
    throw new Error(`invalid ProxyJump ${JSON.stringify(spec)}: ${why}`);
  };
  const isUri = hop.startsWith('ssh://');
  let rest = isUri ? hop.slice('ssh://'.length).replace(/\/$/, '') : hop;
  if (isUri && rest.includes('/')) fail(`an ssh:// URI cannot have a path: ${hop}`);

  // The last '@' separates the user, as in OpenSSH, so a user name may itself contain '@'.
  const at = rest.lastIndexOf('@');
  let user: string | undefined;
  if (at >= 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
    // URI users may carry ';key=value' parameters (RFC draft); OpenSSH drops them and percent-decodes.
    if (isUri) user = decodeUser(user.split(';')[0] ?? '', fail);
    if (user === '') fail(`empty user name in ${hop}`);
  }

  let host = rest;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) fail(`unclosed "[" in ${hop}`);
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) fail(`unexpected text after "]" in ${hop}`);
    if (after !== '') portText = after.slice(1);
  } else if (rest.includes(':')) {
    // Like OpenSSH, the first ':' starts the port; an IPv6 address needs brackets.
    host = rest.slice(0, rest.indexOf(':'));
    portText = rest.slice(rest.indexOf(':') + 1);
  }
  if (host === '') fail(`no host in ${JSON.stringify(hop)}`);
  if (portText === undefined) return { ...(user !== undefined && { user }), host };
  const port = /^\d+$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) fail(`bad port ${JSON.stringify(portText)} in ${hop}`);
  return { ...(user !== undefined && { user }), host, port };
}

function decodeUser(user: string, fail: (why: string) => never): string {
  try {
    return decodeURIComponent(user);
  } catch {
    return fail(`bad percent-encoding in user ${JSON.stringify(user)}`);
  }
}

/**
 * Resolves `alias` with `ssh -G [-F configFile] alias`, so Host patterns, Match, Include and defaults
 * apply exactly as for `ssh alias`. ssh does not connect, but `Match exec` commands and hostname
 * canonicalisation in the config do run.
 *
 * @example
 * const cfg = await resolveSshConfig('web1', { home: os.homedir() });
 */
export async function resolveSshConfig(alias: string, opts: ResolveSshConfigOptions = {}): Promise<ResolvedSshConfig> {
  // A leading '-' would be read as an option; whitespace cannot be a host name.
  if (alias === '' || alias.startsWith('-') || /\s/.test(alias)) {
    throw new TypeError(`not a usable ssh host alias: ${JSON.stringify(alias)}`);
  }
  const args = ['-G', ...(opts.configFile === undefined ? [] : ['-F', opts.configFile]), alias];
  const output = await (opts.run ?? runSsh)(args);
  try {
    return parseSshG(output, opts);
  } catch (cause) {
    throw new Error(`could not read the ssh configuration of ${alias}: ${(cause as Error).message}`, { cause });
  }
}

const SSH_TIMEOUT_MS = 30_000; // ssh -G is instant unless a Match exec or DNS canonicalisation hangs

function runSsh(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ssh', args, { encoding: 'utf8', timeout: SSH_TIMEOUT_MS, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const shown = `ssh ${args.join(' ')}`;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(new Error(`${shown}: the OpenSSH client (ssh) is not installed or not on PATH`, { cause: err }));
      }
      const how = err.killed ? `timed out after ${SSH_TIMEOUT_MS / 1000}s` : `failed with exit code ${String(err.code)}`;
      const detail = stderr.trim().split('\n').slice(-5).join('\n');
      reject(new Error(`${shown} ${how}${detail ? `: ${detail}` : ''}`, { cause: err }));
    });
  });
}
