import { inspect } from 'node:util';

const MASK = '***';

/**
 * A value that must never be printed. It renders as `***` in every output
 * path (toString, JSON, util.inspect, masked commands, diffs, errors).
 *
 * @example
 * const pw = secret(env.DB_PASSWORD);
 * sh`psql -c ${pw}`.toString(); // "psql -c ***"
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    if (typeof value !== 'string') throw new TypeError('secret() takes a string');
    this.#value = value;
  }
  /** The real value; call it only where the value leaves for the host. */
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return MASK;
  }
  toJSON(): string {
    return MASK;
  }
  [inspect.custom](): string {
    return MASK;
  }
}

/** Marks a value as secret. @example secret(process.env.TOKEN ?? '') */
export function secret(value: string): Secret {
  return new Secret(value);
}

/** Text inserted into a command unquoted: the single, greppable escape hatch. */
export class Raw {
  constructor(readonly text: string) {
    if (typeof text !== 'string') throw new TypeError('raw() takes a string');
  }
}

/** Inserts shell syntax verbatim. @example sh`ls ${raw('*.conf')}` */
export function raw(text: string): Raw {
  return new Raw(text);
}

/**
 * A piece of a command: shell text, or a secret quoted only when revealed.
 * `escapes` counts how many enclosing single-quoted words the secret sits in.
 */
export type Part = { readonly text: string } | { readonly secret: Secret; readonly escapes?: number };

/** A value accepted inside the `sh` template. */
export type Interpolation = string | number | bigint | Raw | Secret | Command | readonly Interpolation[];

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

function escapeInside(text: string): string {
  return text.replace(/'/g, `'\\''`);
}

function revealSecret(value: Secret, escapes: number): string {
  let out = quote(value.reveal());
  for (let i = 0; i < escapes; i++) out = escapeInside(out);
  return out;
}

/** POSIX single-quoting; works in dash, bash and busybox sh alike (no `$'…'`). */
export function quote(value: string): string {
  if (value !== '' && SAFE.test(value)) return value;
  return `'${escapeInside(value)}'`;
}

/**
 * A shell command as a value: the text to run plus the secrets inside it.
 * `toString()` and JSON give the masked text; only `reveal()` gives the real one.
 */
export class Command {
  /** Already-quoted pieces; secrets stay `Secret` objects, which mask themselves. */
  readonly parts: readonly Part[];
  private constructor(parts: readonly Part[]) {
    this.parts = parts;
  }

  /** Builds a command from already-quoted parts (used by `sh`). */
  static fromParts(parts: readonly Part[]): Command {
    return new Command(parts);
  }

  /** Joins commands with a separator such as `' && '` or `'\n'`. */
  static join(commands: readonly Command[], separator: string): Command {
    const parts: Part[] = [];
    commands.forEach((c, i) => {
      if (i > 0) parts.push({ text: separator });
      parts.push(...c.parts);
    });
    return new Command(parts);
  }

  /** The command with secrets in place, for the host only. */
  reveal(): string {
    return this.parts.map((p) => ('text' in p ? p.text : revealSecret(p.secret, p.escapes ?? 0))).join('');
  }

  /** The secret values inside, so that output echoing them can be masked. */
  secrets(): string[] {
    return this.parts.flatMap((p) => ('secret' in p ? [p.secret.reveal()] : []));
  }

  /**
   * This whole command as one quoted shell word, e.g. for `sh -c`; secrets stay masked.
   * @example sh`sudo -n sh -c ${cmd.asArgument()}`
   */
  asArgument(): Command {
    const inner = this.parts.map((p): Part => ('text' in p ? { text: escapeInside(p.text) } : { secret: p.secret, escapes: (p.escapes ?? 0) + 1 }));
    return new Command([{ text: "'" }, ...inner, { text: "'" }]);
  }

  toString(): string {
    return this.parts.map((p) => ('text' in p ? p.text : MASK)).join('');
  }
  toJSON(): string {
    return this.toString();
  }
  [inspect.custom](): string {
    return `Command(${this.toString()})`;
  }
}

function partsOf(value: unknown, where: number): Part[] {
  if (value instanceof Command) return [...value.parts];
  if (value instanceof Raw) return [{ text: value.text }];
  if (value instanceof Secret) return [{ secret: value }];
  if (typeof value === 'string') return [{ text: quote(value) }];
  if (typeof value === 'number' || typeof value === 'bigint') return [{ text: quote(String(value)) }];
  if (Array.isArray(value)) {
    return value.flatMap((v, i) => (i > 0 ? [{ text: ' ' }, ...partsOf(v, where)] : partsOf(v, where)));
  }
  if (value instanceof Promise || (typeof value === 'object' && value !== null && 'then' in value)) {
    throw new TypeError(`sh: interpolation #${where} is a Promise; await it first`);
  }
  throw new TypeError(`sh: interpolation #${where} is ${value === null ? 'null' : typeof value}; pass a string, number, raw(), secret() or Command`);
}

/**
 * Builds a command; every interpolated value is POSIX-single-quoted unless it
 * is `raw()`, a nested `Command`, or a `secret()` (quoted and masked).
 *
 * @example
 * sh`install -m 600 ${src} ${dest}`
 * sh`echo ${['a b', 'c']}` // echo 'a b' c
 */
export function sh(strings: TemplateStringsArray, ...values: Interpolation[]): Command {
  const parts: Part[] = [];
  strings.forEach((s, i) => {
    parts.push({ text: s });
    if (i < values.length) parts.push(...partsOf(values[i], i));
  });
  return Command.fromParts(parts);
}

/** Replaces every occurrence of the given secret values with `***`. */
export function mask(text: string, secrets: readonly string[]): string {
  let out = text;
  // Longest first, so a secret containing another is masked whole.
  for (const s of [...secrets].filter((s) => s.length > 0).sort((a, b) => b.length - a.length)) {
    out = out.split(s).join(MASK);
  }
  return out;
}
