import { Command, raw, sh } from '../command/command.ts';
import { assertOk, type Connection, type ExecResult } from '../connection/connection.ts';
import type { FactBatch } from '../facts/gather.ts';
import { TackleError, tail } from '../errors.ts';

// A notified handler must survive a failed step, Ctrl-C or a dead controller. So the notification
// is a file on the host, written before the change that triggers it is applied and removed only
// after the handler succeeded: one directory per task, one file per handler. A run finds the
// files left by earlier runs before its first step and runs those handlers with its own.

/** A handler notification recorded on a host and not yet acted on. */
export interface PendingHandler {
  handler: string;
  /** The step whose change notified it. */
  step: string;
  /** When it was recorded (ISO time, controller clock). */
  at: string;
  /** The run that recorded it: `CONTROLLER (pid N)`. */
  by: string;
}

/** What a run finds on a host before its first step. */
export interface HostState {
  /** The directory holding this task's records on the host. */
  dir: string;
  /** Records found there, in name order. */
  pending: PendingHandler[];
}

/** How a host's notifications went in one run, for the plan, the recap and the JSON report. */
export interface HandlerReport {
  /** Found pending from an earlier run (for handlers the task defines). */
  earlier: PendingHandler[];
  /** Handlers that ran to the end in this run (planned, in a dry-run). */
  ran: string[];
  /** Handlers still recorded on the host after this run: the next run runs them. */
  outstanding: string[];
}

const BEGIN = 'tackle-state';
const RECORD = 'tackle-pending';
/** Ends the state's output; a reader waits for it before trusting what came before. */
export const STATE_END = 'tackle-end';

/**
 * A name as one safe path component: bytes outside `[A-Za-z0-9_-]` become `%XX`, so `..` or `/`
 * in a task or handler name cannot leave the directory.
 *
 * @example recordName('reload nginx') // 'reload%20nginx'
 */
export function recordName(name: string): string {
  return [...Buffer.from(name)].map((b) => (/[A-Za-z0-9_-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

/**
 * The script that prints where a task's records live on the host and every record there, ending
 * with {@link STATE_END}. Without `stateDir`: /var/lib/tackle for root, else the login's
 * `$XDG_STATE_HOME/tackle` (a non-root login cannot write /var/lib).
 *
 * @example readStateScript('provision') // … d="$d/pending/"provision; printf 'tackle-state %s\n' "$d"; …
 */
export function readStateScript(task: string, stateDir?: string): Command {
  const base = stateDir === undefined ? raw(`if [ "$(id -u)" = 0 ]; then d=/var/lib/tackle; else d="\${XDG_STATE_HOME:-$HOME/.local/state}/tackle"; fi`) : sh`d=${stateDir}`;
  // Temp files start with a dot, so `*` never lists a record being written.
  return sh`${base}; d="$d/pending/"${recordName(task)}; printf '%s %s\\n' ${BEGIN} "$d"; for f in "$d"/*; do if [ -f "$f" ]; then printf '%s %s\\n' ${RECORD} "$(cat "$f")"; fi; done; echo ${STATE_END}`;
}

/**
 * Pure: the state printed by {@link readStateScript}, or undefined until its end line arrived.
 * A record that is not what tackle writes is a TypeError naming it.
 */
export function parseHostState(stdout: string): HostState | undefined {
  const lines = stdout.split('\n');
  const end = lines.indexOf(STATE_END);
  if (end < 0) return undefined;
  let dir: string | undefined;
  const pending: PendingHandler[] = [];
  for (const line of lines.slice(0, end)) {
    if (line.startsWith(`${BEGIN} `)) dir = line.slice(BEGIN.length + 1);
    if (!line.startsWith(`${RECORD} `)) continue;
    const text = line.slice(RECORD.length + 1);
    const r = (() => {
      try {
        return JSON.parse(text) as Partial<PendingHandler>;
      } catch {
        return undefined;
      }
    })();
    if (!r || typeof r.handler !== 'string' || typeof r.step !== 'string' || typeof r.at !== 'string' || typeof r.by !== 'string') {
      throw new TypeError(`a pending handler record in ${dir ?? 'the state directory'} is not one tackle writes: ${text}`);
    }
    pending.push({ handler: r.handler, step: r.step, at: r.at, by: r.by });
  }
  if (dir === undefined) return undefined;
  return { dir, pending };
}

/** What a run reads on a host before its first step: the task's pending records and, with them, the facts of its steps. */
export interface HostStart {
  state: HostState;
  /** The values of the batch's facts, in its order (none without a batch). */
  values: unknown[];
}

/**
 * The script that prints a task's records ({@link readStateScript}) and then, in the same round
 * trip, the output of a fact batch; the end line goes to stderr too, so each stream of the batch
 * starts after it.
 */
export function startScript(read: Command, batch: FactBatch | undefined): Command {
  return batch ? sh`${read}; echo ${STATE_END} >&2; ${batch.script}` : read;
}

/** The state and fact values printed by {@link startScript}; a TackleError naming the host when they are cut short. */
export function parseStart(host: string, result: ExecResult, batch: FactBatch | undefined): HostStart {
  let state: HostState | undefined;
  try {
    state = parseHostState(result.stdout);
  } catch (err) {
    throw new TackleError({ phase: 'fact', host, reason: (err as Error).message, cause: err });
  }
  if (!state) throw new TackleError({ phase: 'fact', host, reason: 'could not read pending handler records: the output ended early', command: result.command.toString(), stderrTail: tail(result.stderr) });
  if (!batch) return { state, values: [] };
  const after = (text: string): string => {
    const at = `\n${text}`.indexOf(`\n${STATE_END}\n`);
    return at < 0 ? '' : text.slice(at + STATE_END.length + 1);
  };
  return { state, values: batch.read(host, { stdout: after(result.stdout), stderr: after(result.stderr), exitCode: result.exitCode }) };
}

/**
 * Reads a task's pending records without taking the lock (a dry-run), and a fact batch with them.
 *
 * @example const { state } = await readHostState(conn, readStateScript('web'));
 */
export async function readHostState(conn: Connection, read: Command, batch?: FactBatch): Promise<HostStart> {
  if (batch) conn.countCommands(batch.commands);
  const result = assertOk(await conn.exec(startScript(read, batch)), conn.host, 'could not read pending handler records');
  return parseStart(conn.host, result, batch);
}

/**
 * The notifications of one task on one host: those found pending, those this run records
 * before the change that triggers them, and which handlers ran. Only handlers the task defines
 * are recorded or run; a record for a handler the task no longer has is left alone.
 *
 * @example
 * const handlers = new PendingHandlers(conn, state, ['reload nginx'], 'ctl (pid 42)');
 * await handlers.record(['reload nginx'], 'nginx.site app'); // before applying the change
 * await handlers.done('reload nginx');                       // after the handler succeeded
 */
export class PendingHandlers {
  readonly #recorded = new Set<string>();
  readonly #ran: string[] = [];
  readonly earlier: PendingHandler[];

  constructor(
    readonly connection: Connection,
    readonly state: HostState,
    readonly handlers: readonly string[],
    readonly by: string,
  ) {
    this.earlier = state.pending.filter((p) => handlers.includes(p.handler));
    for (const p of this.earlier) this.#recorded.add(p.handler);
  }

  /** True when a handler must run: recorded on the host by this run or an earlier one. */
  has(handler: string): boolean {
    return this.#recorded.has(handler);
  }

  /** Writes, in one exec, the records of the task's handlers in `names` not yet on the host. */
  async record(names: readonly string[], step: string): Promise<void> {
    const fresh = names.filter((n, i) => this.handlers.includes(n) && !this.#recorded.has(n) && names.indexOf(n) === i);
    if (fresh.length === 0) return;
    const at = new Date().toISOString();
    const dir = this.state.dir;
    const writes = fresh.map((handler) => {
      const file = `${dir}/${recordName(handler)}`;
      const tmp = `${dir}/.${recordName(handler)}.tmp`;
      return sh`printf '%s\\n' ${JSON.stringify({ handler, step, at, by: this.by })} > ${tmp} && mv -f ${tmp} ${file}`;
    });
    const command = sh`mkdir -p ${dir} && ${Command.join(writes, ' && ')}`;
    assertOk(await this.connection.exec(command), this.connection.host, `could not record the notification of ${fresh.map((n) => `"${n}"`).join(', ')} on the host`);
    fresh.forEach((n) => this.#recorded.add(n));
  }

  /** After a handler succeeded: its record is removed (left in place by a dry-run, which only planned it). */
  async done(handler: string, dryRun: boolean): Promise<void> {
    if (!dryRun && this.#recorded.has(handler)) {
      assertOk(await this.connection.exec(sh`rm -f ${`${this.state.dir}/${recordName(handler)}`}`), this.connection.host, `could not clear the notification of "${handler}"`);
      this.#recorded.delete(handler);
    }
    this.#ran.push(handler);
  }

  report(): HandlerReport {
    return { earlier: this.earlier, ran: [...this.#ran], outstanding: this.handlers.filter((h) => this.#recorded.has(h) && !this.#ran.includes(h)) };
  }
}
