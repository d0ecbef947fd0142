import { isIP } from 'node:net';
import { Secret } from '../command/command.ts';

/** How a var type is built, so the vars a host gives but a task does not declare can be found inside objects too. */
export type VarStructure = { kind: 'object'; fields: Shape } | { kind: 'array'; item: VarType<unknown> };

/**
 * A runtime check with a static type: tasks declare the vars they need with
 * these, and hosts are validated before any connection. A check throws a
 * {@link VarError}; objects and arrays check every member and throw one
 * VarError listing every problem.
 *
 * @example
 * const vars = { deployUser: v.userName(), sshPort: v.port().default(22), sites: v.array(v.hostPort()).optional() };
 */
export class VarType<T> {
  constructor(
    readonly describe: string,
    readonly check: (value: unknown, path: string) => T,
    readonly structure?: VarStructure,
    /** What an absent var gets: an error, `undefined`, or a default (shown by `--help`). */
    readonly absent: VarAbsent = { kind: 'required' },
  ) {}

  /** The var may be absent; the task sees `undefined`. */
  optional(): VarType<T | undefined> {
    return new VarType(`${this.describe} (optional)`, (value, path) => (value === undefined ? undefined : this.check(value, path)), this.structure, { kind: 'optional' });
  }

  /** The var may be absent; the task sees `value`. */
  default(value: T): VarType<T> {
    return new VarType(this.describe, (v, path) => (v === undefined ? value : this.check(v, path)), this.structure, { kind: 'default', value });
  }

  /**
   * One line for `--help`: what fits, then the default or whether it must be given. A secret
   * default shows as `***`.
   *
   * @example v.port().default(22).help() // 'a port number (1-65535); default 22'
   */
  help(): string {
    if (this.absent.kind === 'optional') return this.describe;
    if (this.absent.kind === 'required') return `${this.describe}; required`;
    const shown = this.absent.value instanceof Secret ? '***' : JSON.stringify(this.absent.value, (_k, x: unknown) => (x instanceof Secret ? '***' : x));
    return `${this.describe}; default ${shown.length > 60 ? `${shown.slice(0, 60)}…` : shown}`;
  }

  /**
   * A further check of a value that passed this one: `ok` says whether it fits, `describe` what fits.
   *
   * @example v.string().refine((k) => parseAuthorizedKey(k) !== undefined, 'one OpenSSH public key line')
   */
  refine(ok: (value: T) => boolean, describe: string): VarType<T> {
    return new VarType(describe, (value, path) => {
      const checked = this.check(value, path);
      if (!ok(checked)) throw new VarError(path, describe, value);
      return checked;
    }, this.structure, this.absent);
  }
}

/** What a var that a host does not give becomes. */
export type VarAbsent = { kind: 'required' } | { kind: 'optional' } | { kind: 'default'; value: unknown };

/**
 * Each var of a shape with its {@link VarType.help} line, the fields of object vars after their
 * object as `name.field` (`name[].field` in an array of objects): the vars part of a task's `--help`.
 *
 * @example describeShape({ sshPort: v.port().default(22) }) // [{ name: 'sshPort', help: 'a port number (1-65535); default 22' }]
 */
export function describeShape(shape: Shape, prefix = ''): { name: string; help: string }[] {
  return Object.entries(shape).flatMap(([name, type]) => [
    { name: `${prefix}${name}`, help: type.help() },
    ...(type.structure?.kind === 'object' ? describeShape(type.structure.fields, `${prefix}${name}.`) : []),
    ...(type.structure?.kind === 'array' && type.structure.item.structure?.kind === 'object' ? describeShape(type.structure.item.structure.fields, `${prefix}${name}[].`) : []),
  ]);
}

/** One var that does not fit: where, what was expected, what was given. */
export interface VarProblem {
  readonly path: string;
  readonly expected: string;
  readonly got: unknown;
  readonly message: string;
}

/**
 * Vars that failed their checks; `path` names the first (`sites[2].name`), `problems` lists every
 * one found, and the message has one line per problem.
 */
export class VarError extends Error {
  readonly problems: readonly VarProblem[];

  constructor(
    readonly path: string,
    readonly expected: string,
    readonly got: unknown,
    more: readonly VarProblem[] = [],
  ) {
    const first = got === undefined ? `${path} is missing (expected ${expected})` : `${path} must be ${expected}, got ${describeValue(got)}`;
    super([first, ...more.map((p) => p.message)].join('\n'));
    this.name = 'VarError';
    this.problems = [{ path, expected, got, message: first }, ...more];
  }

  /** One error for all of `errors` (at least one). @example throw VarError.all([a, b]) */
  static all(errors: readonly VarError[]): VarError {
    const [first, ...rest] = errors.flatMap((e) => e.problems);
    if (!first) throw new TypeError('VarError.all needs at least one error');
    return errors.length === 1 ? (errors[0] as VarError) : new VarError(first.path, first.expected, first.got, rest);
  }
}

function describeValue(v: unknown): string {
  if (v instanceof Secret) return 'a secret';
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/** Checks each entry, going on past failures, and throws one VarError for all of them. */
function checkEach<K, R>(entries: readonly K[], check: (entry: K) => R): R[] {
  const out: R[] = [];
  const errors: VarError[] = [];
  for (const entry of entries) {
    try {
      out.push(check(entry));
    } catch (err) {
      if (!(err instanceof VarError)) throw err;
      errors.push(err);
    }
  }
  if (errors.length > 0) throw VarError.all(errors);
  return out;
}

function scalar<T>(describe: string, ok: (v: unknown) => v is T): VarType<T> {
  return new VarType(describe, (value, path) => {
    if (!ok(value)) throw new VarError(path, describe, value);
    return value;
  });
}

/** A string var that must also pass `ok`. */
function text(describe: string, ok: (s: string) => boolean): VarType<string> {
  return scalar(describe, (x): x is string => typeof x === 'string' && ok(x));
}

function wholeNumber(describe: string, min: number, max: number): VarType<number> {
  return scalar(describe, (x): x is number => Number.isInteger(x) && (x as number) >= min && (x as number) <= max);
}

function range(what: string, min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return `${what} from ${min} to ${max}`;
  if (min !== undefined) return `${what} of ${min} or more`;
  if (max !== undefined) return `${what} of at most ${max}`;
  return what;
}

// One DNS label: letters, digits and '-', not at either end (RFC 1123).
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const DOMAIN = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`);

function isDomain(s: string): boolean {
  return DOMAIN.test(s);
}

/** Whether `s` is an IPv4 address, or IPv6 when `v6`. */
function isAddress(s: string, v6 = true): boolean {
  const family = isIP(s);
  return family === 4 || (v6 && family === 6);
}

function isNetwork(s: string): boolean {
  const [address = '', prefix, ...rest] = s.split('/');
  if (rest.length > 0 || !isAddress(address)) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (isIP(address) === 4 ? 32 : 128);
}

function isHostPort(s: string): boolean {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
  if (!m) return false;
  const port = Number(m[3]);
  const host = m[1] === undefined ? isDomain(m[2] as string) || isAddress(m[2] as string, false) : isIP(m[1]) === 6;
  return host && port >= 1 && port <= 65535;
}

function isTimezone(s: string): boolean {
  if (!/^[A-Za-z0-9_+-]+(?:\/[A-Za-z0-9_+-]+)*$/.test(s)) return false;
  let resolved: string;
  try {
    resolved = new Intl.DateTimeFormat('en', { timeZone: s }).resolvedOptions().timeZone;
  } catch {
    return false;
  }
  // Intl ignores case, the host's zoneinfo files do not: 'europe/berlin' is refused, aliases such as 'Etc/UTC' are not.
  return resolved === s || resolved.toLowerCase() !== s.toLowerCase();
}

export type Shape = Readonly<Record<string, VarType<unknown>>>;
export type InferShape<S extends Shape> = { [K in keyof S]: S[K] extends VarType<infer T> ? T : never };

/**
 * Builders for var types. The precise ones (`hostPort`, `email`, `timezone`…) accept only what the
 * operations they feed accept, so a bad value is refused with the inventory, before any host is
 * contacted; the operations keep their own checks as a second line.
 */
export const v = {
  string: () => scalar('a string', (x): x is string => typeof x === 'string'),
  /** A number; `min`/`max` bound it. */
  number: (bounds: { min?: number; max?: number } = {}) =>
    scalar(range('a number', bounds.min, bounds.max), (x): x is number => typeof x === 'number' && Number.isFinite(x) && x >= (bounds.min ?? -Infinity) && x <= (bounds.max ?? Infinity)),
  /** A whole number; `min`/`max` bound it. */
  integer: (bounds: { min?: number; max?: number } = {}) => wholeNumber(range('an integer', bounds.min, bounds.max), bounds.min ?? -Infinity, bounds.max ?? Infinity),
  boolean: () => scalar('true or false', (x): x is boolean => typeof x === 'boolean'),
  port: () => wholeNumber('a port number (1-65535)', 1, 65535),
  secret: () => scalar('a secret (secret(...))', (x): x is Secret => x instanceof Secret),
  oneOf: <const T extends string>(...values: T[]) =>
    scalar(`one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, (x): x is T => values.includes(x as T)),
  /** A string matching `pattern`; `describe` says what in words ("a rate such as 10r/s"). */
  match: (pattern: RegExp, describe: string) => text(describe, (s) => pattern.test(s)),
  /** A DNS name (`app.example.com`): labels of letters, digits and '-', at most 253 characters. */
  domain: () => text('a domain name such as "app.example.com"', isDomain),
  /** A machine's host name (`web1` or `web1.example.com`), at most 64 characters as Linux allows. */
  hostname: () => text('a host name such as "web1" or "web1.example.com" (at most 64 characters)', (s) => s.length <= 64 && isDomain(s)),
  /** `host:port`, `1.2.3.4:port` or `[::1]:port`, with a port from 1 to 65535. */
  hostPort: () => text('host:port with a port from 1 to 65535, such as "127.0.0.1:3000"', isHostPort),
  /** An IPv4 or IPv6 address. */
  ipAddress: () => text('an IP address', (s) => isAddress(s)),
  /** An IP address or a network such as `10.0.0.0/8`. */
  network: () => text('an IP address or a network such as "10.0.0.0/8"', isNetwork),
  /** An e-mail address (`ops@example.com`). */
  email: () => text('an e-mail address such as "ops@example.com"', (s) => /^[^\s@"'<>]+@[^\s@"'<>]+$/.test(s) && isDomain(s.slice(s.indexOf('@') + 1))),
  /** An http:// or https:// URL. */
  url: () =>
    text('an http(s) URL', (s) => {
      if (!/^https?:\/\/\S+$/.test(s)) return false;
      return URL.canParse(s);
    }),
  /** An absolute path without NUL or line breaks. */
  path: () => text('an absolute path such as "/srv/app"', (s) => s.startsWith('/') && !/[\0\n\r]/.test(s)),
  /** A name usable as a file name on its own: letters, digits, '.', '_', '-', not starting with '.' or '-' (site, certificate, app names). */
  fileName: () => text("a name of letters, digits, '.', '_' and '-' (not starting with '.' or '-')", (s) => /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(s)),
  /** A login name that needs no care anywhere (useradd, sudoers.d file names, AllowUsers): lower-case letters, digits, '_', '-'. */
  userName: () => text('a user name such as "deploy" (lower-case letters, digits, _ and -, at most 32)', (s) => /^[a-z_][a-z0-9_-]{0,31}$/.test(s)),
  /** A time zone of the IANA database, spelt as its file under /usr/share/zoneinfo (`Europe/Berlin`, `UTC`). */
  timezone: () => text('a time zone such as "Europe/Berlin" or "UTC"', isTimezone),
  /** A time of day, `HH:MM` on the 24-hour clock. */
  timeOfDay: () => text('a time of day HH:MM (24 h) such as "03:30"', (s) => /^(?:[01]\d|2[0-3]):[0-5]\d$/.test(s)),
  /** A duration as fail2ban and systemd both read it: whole seconds, or a number with s, m, h, d or w (`10m`, `1h`). */
  duration: () => text('a duration such as "30s", "10m", "1h", "1d" or "1w"', (s) => /^\d+[smhdw]?$/.test(s)),
  /** A systemd unit name (`app.service`, `app`). */
  unitName: () => text('a systemd unit name such as "app.service"', (s) => /^[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]*$/.test(s)),
  /** A git branch, tag or commit as `git check-ref-format` allows, not starting with '-'. */
  gitRef: () => text('a git branch, tag or commit such as "v1.4.2" or "main"', (s) => s !== '' && !s.startsWith('-') && !/[\s\x00-\x1f\x7f~^:?*[\\]|\.\.|@\{|\/\/|\/$|\.lock$|^\//.test(s)),
  /** One OpenSSH public key line, `[options] type base64 [comment]` as authorized_keys holds it. */
  sshPublicKey: () =>
    text('one OpenSSH public key line ("ssh-ed25519 AAAA… me@laptop")', (s) => !/[\n\r\0]/.test(s) && /(?:^|\s)(?:ssh|ecdsa|sk|rsa)-[A-Za-z0-9@.-]+[ \t]+[A-Za-z0-9+/]+={0,3}(?:[ \t]|$)/.test(s.trim())),
  /** A Debian package name (`nginx`, `libc6:i386`). */
  packageName: () => text('a Debian package name such as "nginx"', (s) => /^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?$/.test(s)),
  /** A value that fits any of `types` (tried in order). */
  anyOf: <T>(...types: VarType<T>[]) => {
    const describe = types.map((t) => t.describe).join(', or ');
    return new VarType<T>(describe, (value, path) => {
      for (const t of types) {
        try {
          return t.check(value, path);
        } catch (err) {
          if (!(err instanceof VarError)) throw err;
        }
      }
      throw new VarError(path, describe, value);
    });
  },
  array: <T>(item: VarType<T>) =>
    new VarType<T[]>(
      `an array of ${item.describe}`,
      (value, path) => {
        if (!Array.isArray(value)) throw new VarError(path, `an array of ${item.describe}`, value);
        return checkEach([...value.entries()], ([i, x]) => item.check(x, `${path}[${i}]`));
      },
      { kind: 'array', item },
    ),
  /** An object of any keys that fit `key`, each value a `value` (thresholds by mount point). */
  record: <T>(key: VarType<string>, value: VarType<T>) =>
    new VarType<Record<string, T>>(`an object of ${value.describe} by ${key.describe}`, (given, path) => {
      if (typeof given !== 'object' || given === null || Array.isArray(given)) throw new VarError(path, `an object of ${value.describe} by ${key.describe}`, given);
      return Object.fromEntries(checkEach(Object.entries(given), ([k, x]) => [key.check(k, `${path} key ${JSON.stringify(k)}`), value.check(x, `${path}.${k}`)] as const));
    }),
  object: <S extends Shape>(shape: S) =>
    new VarType<InferShape<S>>(
      'an object',
      (value, path) => {
        if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new VarError(path, 'an object', value);
        return checkShape(shape, value as Record<string, unknown>, `${path}.`);
      },
      { kind: 'object', fields: shape },
    ),
};

/** Validates every var of a shape, all of them: one VarError lists every problem. Unknown extra vars are allowed (other tasks may use them). */
export function checkShape<S extends Shape>(shape: S, vars: Readonly<Record<string, unknown>>, prefix = ''): InferShape<S> {
  const out: Record<string, unknown> = { ...vars };
  checkEach(Object.entries(shape), ([name, type]) => (out[name] = type.check(vars[name], `${prefix}${name}`)));
  return out as InferShape<S>;
}

/** A var given but not declared, and the declared var it was probably meant to be. */
export interface StrayVar {
  readonly path: string;
  readonly name: string;
  readonly suggestion?: string;
}

/**
 * The vars in `vars` that `shape` does not declare, at the top and inside declared objects, each
 * with the declared var of its level it is a near miss of (`swapMB` for `swapMb`). Top-level vars
 * in `shared` are left out: the inventory says other tasks read them. Inside a declared object
 * every unknown key is listed, since that object's shape belongs to this task.
 *
 * @example strayVars({ swapMb: v.integer() }, { swapMB: 512, backup: {} }, new Set(['backup'])) // [{ path: 'swapMB', name: 'swapMB', suggestion: 'swapMb' }]
 */
export function strayVars(shape: Shape, vars: Readonly<Record<string, unknown>>, shared: ReadonlySet<string> = new Set()): StrayVar[] {
  return strays(shape, vars, '', shared);
}

function strays(shape: Shape, vars: Readonly<Record<string, unknown>>, prefix: string, shared: ReadonlySet<string>): StrayVar[] {
  const declared = Object.keys(shape);
  const out: StrayVar[] = [];
  for (const [name, value] of Object.entries(vars)) {
    const type = shape[name];
    if (type) out.push(...inside(type.structure, value, `${prefix}${name}`));
    else if (!shared.has(name)) {
      const suggestion = nearest(name, declared);
      out.push({ path: `${prefix}${name}`, name, ...(suggestion !== undefined ? { suggestion } : {}) });
    }
  }
  return out;
}

function inside(structure: VarStructure | undefined, value: unknown, path: string): StrayVar[] {
  if (structure?.kind === 'object' && typeof value === 'object' && value !== null && !Array.isArray(value)) {
    return strays(structure.fields, value as Record<string, unknown>, `${path}.`, new Set());
  }
  if (structure?.kind === 'array' && Array.isArray(value)) return value.flatMap((x, i) => inside(structure.item.structure, x, `${path}[${i}]`));
  return [];
}

/** A var that hosts of a run give and its task does not declare, the hosts that give it, and the declared var it was probably meant to be. */
export interface UndeclaredVar {
  /** `colour`, or inside a declared object `sites[0].upstream`. */
  readonly path: string;
  readonly hosts: readonly string[];
  /** The path of the declared var that `path` is a near miss of (`sites[0].upstreams`). */
  readonly suggestion?: string;
}

/**
 * Every var that `hosts` give and `shape` does not declare ({@link strayVars}), once per path and
 * suggestion, with the hosts that give it, in the order first found.
 *
 * @example undeclaredVars({ swapMb: v.integer() }, [{ name: 'web1', vars: { swapMB: 512 } }]) // [{ path: 'swapMB', hosts: ['web1'], suggestion: 'swapMb' }]
 */
export function undeclaredVars(shape: Shape, hosts: readonly { readonly name: string; readonly vars: Readonly<Record<string, unknown>> }[], shared?: ReadonlySet<string>): UndeclaredVar[] {
  const found = new Map<string, { path: string; hosts: string[]; suggestion?: string }>();
  for (const host of hosts) {
    for (const stray of strayVars(shape, host.vars, shared)) {
      const suggestion = stray.suggestion === undefined ? undefined : `${stray.path.slice(0, -stray.name.length)}${stray.suggestion}`;
      const key = `${stray.path}\0${suggestion}`;
      const entry = found.get(key) ?? { path: stray.path, hosts: [], ...(suggestion !== undefined ? { suggestion } : {}) };
      entry.hosts.push(host.name);
      found.set(key, entry);
    }
  }
  return [...found.values()];
}

/**
 * One line for all of `vars` (from {@link undeclaredVars}) on a run of `hosts`: the near misses
 * first, each with its hosts and the var it was probably meant to be, then the other vars, those
 * on the same hosts together. A var on every host of a run of several says so instead of naming
 * them; a long list of hosts is cut (the JSON report has them all). When a top-level var may just
 * belong to another task, the line says how to leave such vars out.
 *
 * @example undeclaredWarning('provision', [{ path: 'swapMB', hosts: ['web1'], suggestion: 'swapMb' }], ['web1', 'web2']) // 'task provision ignores vars it does not declare: swapMB (web1: did you mean swapMb?)'
 */
export function undeclaredWarning(task: string, vars: readonly UndeclaredVar[], hosts: readonly string[]): string {
  const where = (on: readonly string[]) => {
    if (hosts.length > 1 && on.length === hosts.length) return 'every host';
    return on.length > 4 ? `${on.slice(0, 3).join(', ')} and ${on.length - 3} more` : on.join(', ');
  };
  const others = new Map<string, { on: readonly string[]; paths: string[] }>();
  for (const u of vars) {
    if (u.suggestion !== undefined) continue;
    const key = u.hosts.join('\0');
    const group = others.get(key) ?? { on: u.hosts, paths: [] };
    group.paths.push(u.path);
    others.set(key, group);
  }
  const items = [
    ...vars.flatMap((u) => (u.suggestion === undefined ? [] : [`${u.path} (${where(u.hosts)}: did you mean ${u.suggestion}?)`])),
    ...[...others.values()].map((g) => `${g.paths.join(', ')} (${where(g.on)})`),
  ];
  const sharable = vars.some((u) => u.suggestion === undefined && /^[^.[]+$/.test(u.path));
  return `task ${task} ignores vars it does not declare: ${items.join('; ')}${sharable ? ". Vars of other tasks can be named in the inventory's sharedVars" : ''}`;
}

/**
 * The declared name `name` was most likely meant to be: the same but for case, or at most two
 * edits away (one for short names), or undefined.
 *
 * @example nearest('timeZone', ['timezone', 'hostname']) // 'timezone'
 */
export function nearest(name: string, declared: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const sameButCase = declared.find((d) => d.toLowerCase() === lower);
  if (sameButCase) return sameButCase;
  const limit = Math.min(2, Math.floor(name.length / 3));
  let best: { name: string; distance: number } | undefined;
  for (const d of declared) {
    const distance = editDistance(lower, d.toLowerCase());
    if (distance <= limit && (!best || distance < best.distance)) best = { name: d, distance };
  }
  return best?.name;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j] as number, ((d[i - 2] as number[])[j - 2] as number) + 1);
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}
