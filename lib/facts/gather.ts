import { randomBytes } from 'node:crypto';
import { Command, sh } from '../command/command.ts';
import type { Connection } from '../connection/connection.ts';
import { TackleError, tail } from '../errors.ts';
import type { Fact, FactGroup, FactOutput } from './fact.ts';

/**
 * Many fact commands as one script, and the reader of its output: what a fact batch is, whether it
 * goes alone ({@link gatherFacts}) or rides in another request (the run lock's, see
 * lib/engine/host-lock.ts). A random marker no fact can print by accident splits the outputs.
 */
export interface FactBatch {
  readonly facts: readonly Fact<unknown>[];
  readonly script: Command;
  /** How many commands the script runs: one per fact, but one for the facts of a group. */
  readonly commands: number;
  /** The parsed values, in order; a TackleError naming the host when the output is cut short or a parser refuses it. */
  read(host: string, output: FactOutput): unknown[];
}

/** What the batch runs: one fact's command, or one command for the facts of a group (with their items). */
interface Entry {
  readonly command: Command;
  /** Indexes into the batch's facts. */
  readonly members: readonly number[];
  readonly group?: { readonly of: FactGroup; readonly items: readonly string[] };
}

/** The batch's entries: facts of a group present more than once run as one, at the first one's place. */
function entries(facts: readonly Fact<unknown>[]): Entry[] {
  type Forming = { members: number[]; items: string[]; group?: FactGroup };
  const order: Forming[] = [];
  const byGroup = new Map<string, Forming>();
  facts.forEach((f, i) => {
    if (!f.group) return void order.push({ members: [i], items: [] });
    const joined = byGroup.get(f.group.of.id);
    if (joined) {
      joined.members.push(i);
      joined.items.push(f.group.item);
      return;
    }
    const forming = { members: [i], items: [f.group.item], group: f.group.of };
    byGroup.set(f.group.of.id, forming);
    order.push(forming);
  });
  return order.map(({ members, group, items }) =>
    group && members.length > 1 ? { command: group.command(items), members, group: { of: group, items } } : { command: (facts[members[0] as number] as Fact<unknown>).command, members },
  );
}

export function factBatch(facts: readonly Fact<unknown>[]): FactBatch {
  const marker = `__TACKLE_${randomBytes(8).toString('hex')}__`;
  const list = entries(facts);
  // Each entry runs in a subshell with stdin closed, so `exit` or a read cannot disturb the batch.
  const script = Command.join(
    list.map((e) => sh`(${e.command}) </dev/null; printf '\n%s %s\n' ${marker} $?; printf '\n%s\n' ${marker} >&2`),
    '\n',
  );
  return {
    facts,
    script,
    commands: list.length,
    read(host, result) {
      const split = splitBatch(result.stdout, result.stderr, marker, list.length);
      const outputs = split && memberOutputs(list, split);
      if (!outputs) {
        throw new TackleError({
          phase: 'fact',
          host,
          reason: 'could not read facts: the batch ended early (is the remote shell POSIX sh?)',
          command: script.toString(),
          exitCode: result.exitCode,
          stderrTail: tail(result.stderr),
        });
      }
      return facts.map((fact, i) => {
        const output = outputs[i] as FactOutput;
        try {
          return fact.parse(output);
        } catch (cause) {
          throw new TackleError({
            phase: 'fact',
            host,
            reason: `could not understand fact ${fact.key}: ${(cause as Error).message}`,
            command: fact.command.toString(),
            exitCode: output.exitCode,
            stderrTail: tail(output.stderr),
            cause,
          });
        }
      });
    },
  };
}

/** Each fact's output, in the batch's order; a group's output that does not split stands for all its facts, so that their parsers say why. */
function memberOutputs(list: readonly Entry[], outputs: readonly FactOutput[]): FactOutput[] {
  const byFact: FactOutput[] = [];
  list.forEach((e, i) => {
    const output = outputs[i] as FactOutput;
    if (!e.group) return void (byFact[e.members[0] as number] = output);
    let parts: FactOutput[];
    try {
      parts = e.group.of.split(output, e.group.items);
      if (parts.length !== e.members.length) throw new Error(`${e.group.of.id}: ${parts.length} outputs for ${e.members.length} facts`);
    } catch (err) {
      const failed = { stdout: '', stderr: `${output.stderr}${(err as Error).message}`, exitCode: output.exitCode || 1 };
      parts = e.members.map(() => failed);
    }
    e.members.forEach((m, j) => (byFact[m] = parts[j] as FactOutput));
  });
  return byFact;
}

/** Runs many fact commands in one exec (one round trip); see {@link factBatch}. */
export async function gatherFacts(conn: Connection, facts: readonly Fact<unknown>[]): Promise<unknown[]> {
  if (facts.length === 0) return [];
  const batch = factBatch(facts);
  conn.countCommands(batch.commands - 1);
  return batch.read(conn.host, await conn.exec(sh`${batch.script}`));
}

/** Pure: the per-fact outputs of a batch, or undefined when it is incomplete. */
export function splitBatch(stdout: string, stderr: string, marker: string, count: number): FactOutput[] | undefined {
  const outs: FactOutput[] = [];
  let o = 0;
  let e = 0;
  for (let i = 0; i < count; i++) {
    const outEnd = stdout.indexOf(`\n${marker} `, o);
    const errEnd = stderr.indexOf(`\n${marker}\n`, e);
    if (outEnd < 0 || errEnd < 0) return undefined;
    const lineEnd = stdout.indexOf('\n', outEnd + 1);
    const code = Number(stdout.slice(outEnd + marker.length + 2, lineEnd));
    outs.push({ stdout: stdout.slice(o, outEnd), stderr: stderr.slice(e, errEnd), exitCode: Number.isNaN(code) ? null : code });
    o = lineEnd + 1;
    e = errEnd + marker.length + 2;
  }
  return outs;
}
