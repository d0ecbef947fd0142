import { randomBytes } from 'node:crypto';
import { Command, sh } from '../command/command.ts';
import type { Connection } from '../connection/connection.ts';
import { TackleError, tail } from '../errors.ts';
import type { Fact, FactOutput } from './fact.ts';

/**
 * Runs many fact commands in one exec (one round trip) and splits their
 * outputs by a random marker no fact can print by accident.
 */
export async function gatherFacts(conn: Connection, facts: readonly Fact<unknown>[]): Promise<unknown[]> {
  if (facts.length === 0) return [];
  const marker = `__TACKLE_${randomBytes(8).toString('hex')}__`;
  // Each fact runs in a subshell with stdin closed, so `exit` or a read cannot disturb the batch.
  const script = Command.join(
    facts.map((f) => sh`(${f.command}) </dev/null; printf '\n%s %s\n' ${marker} $?; printf '\n%s\n' ${marker} >&2`),
    '\n',
  );
  conn.countCommands(facts.length - 1);
  const result = await conn.exec(sh`${script}`);
  const outputs = splitBatch(result.stdout, result.stderr, marker, facts.length);
  if (!outputs) {
    throw new TackleError({
      phase: 'fact',
      host: conn.host,
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
        host: conn.host,
        reason: `could not understand fact ${fact.key}: ${(cause as Error).message}`,
        command: fact.command.toString(),
        exitCode: output.exitCode,
        stderrTail: tail(output.stderr),
        cause,
      });
    }
  });
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
