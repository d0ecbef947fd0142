import { Secret } from '../command/command.ts';

/**
 * A runtime check with a static type: tasks declare the vars they need with
 * these, and hosts are validated before any connection.
 *
 * @example
 * const vars = { deployUser: v.string(), sshPort: v.port().default(22), sites: v.array(v.string()).optional() };
 */
export class VarType<T> {
  constructor(
    readonly describe: string,
    readonly check: (value: unknown, path: string) => T,
  ) {}

  /** The var may be absent; the task sees `undefined`. */
  optional(): VarType<T | undefined> {
    return new VarType(`${this.describe} (optional)`, (value, path) => (value === undefined ? undefined : this.check(value, path)));
  }

  /** The var may be absent; the task sees `value`. */
  default(value: T): VarType<T> {
    return new VarType(this.describe, (v, path) => (v === undefined ? value : this.check(v, path)));
  }
}

/** A var that failed its check; `path` names it (`sites[2].name`). */
export class VarError extends Error {
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly got: unknown,
  ) {
    super(got === undefined ? `${path} is missing (expected ${expected})` : `${path} must be ${expected}, got ${describeValue(got)}`);
    this.name = 'VarError';
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

function scalar<T>(describe: string, ok: (v: unknown) => v is T): VarType<T> {
  return new VarType(describe, (value, path) => {
    if (!ok(value)) throw new VarError(path, describe, value);
    return value;
  });
}

export type Shape = Readonly<Record<string, VarType<unknown>>>;
export type InferShape<S extends Shape> = { [K in keyof S]: S[K] extends VarType<infer T> ? T : never };

/** Builders for var types. */
export const v = {
  string: () => scalar('a string', (x): x is string => typeof x === 'string'),
  number: () => scalar('a number', (x): x is number => typeof x === 'number' && Number.isFinite(x)),
  integer: () => scalar('an integer', (x): x is number => Number.isInteger(x)),
  boolean: () => scalar('true or false', (x): x is boolean => typeof x === 'boolean'),
  port: () => scalar('a port number (1-65535)', (x): x is number => Number.isInteger(x) && (x as number) >= 1 && (x as number) <= 65535),
  secret: () => scalar('a secret (secret(...))', (x): x is Secret => x instanceof Secret),
  oneOf: <const T extends string>(...values: T[]) =>
    scalar(`one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, (x): x is T => values.includes(x as T)),
  array: <T>(item: VarType<T>) =>
    new VarType<T[]>(`an array of ${item.describe}`, (value, path) => {
      if (!Array.isArray(value)) throw new VarError(path, `an array of ${item.describe}`, value);
      return value.map((x, i) => item.check(x, `${path}[${i}]`));
    }),
  object: <S extends Shape>(shape: S) =>
    new VarType<InferShape<S>>('an object', (value, path) => {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new VarError(path, 'an object', value);
      return checkShape(shape, value as Record<string, unknown>, `${path}.`);
    }),
};

/** Validates every var of a shape; unknown extra vars are allowed (other tasks may use them). */
export function checkShape<S extends Shape>(shape: S, vars: Readonly<Record<string, unknown>>, prefix = ''): InferShape<S> {
  const out: Record<string, unknown> = { ...vars };
  for (const [name, type] of Object.entries(shape)) out[name] = type.check(vars[name], `${prefix}${name}`);
  return out as InferShape<S>;
}
