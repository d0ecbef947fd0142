import { randomBytes } from 'node:crypto';
import { Command, sh } from '../command/command.ts';
import type { Connection } from '../connection/connection.ts';
import { TackleError, tail } from '../errors.ts';
import type { Fact, FactOutput } from './fact.ts';

/**
 * Many fact commands as one script, and the reader of its output: what a fact batch is, whether it
 * goes alone ({@link gatherFacts}) or rides in another request (the run lock's, see
 * lib/engine/host-lock.ts). A random marker no fact can print by accident splits the outputs.
 */
export interface FactBatch {
  readonly facts: readonly Fact<unknown>[];
  readonly script: Command;
  /** The parsed values, in order; a TackleError naming the host when the output is cut short or a parser refuses it. */
  read(host: string, output: FactOutput): unknown[];
}

export function factBatch(facts: readonly Fact<unknown>[]): FactBatch {
  const marker = `__TACKLE_${randomBytes(8).toString('hex')}__`;
  // Each fact runs in a subshell with stdin closed, so `exit` or a read cannot disturb the batch.
  const script = Command.join(
    facts.map((f) => sh`(${f.command}) </dev/null; printf '\n%s %s\n' ${marker} $?; printf '\n%s\n' ${marker} >&2`),
    '\n',
  );
  return {
    facts,
    script,
    read(host, result) {
      const outputs = splitBatch(result.stdout, result.stderr, marker, facts.length);
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

/** Runs many fact commands in one exec (one round trip); see {@link factBatch}. */
export async function gatherFacts(conn: Connection, facts: readonly Fact<unknown>[]): Promise<unknown[]> {
  if (facts.length === 0) return [];
  const batch = factBatch(facts);
  conn.countCommands(facts.length - 1);
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
