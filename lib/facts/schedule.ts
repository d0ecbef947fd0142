import { sh } from '../command/command.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

/** One coming run: as the host prints it (its local time) and as a UTC instant. */
export interface NextRun {
  local: string;
  utcMs: number;
}

/**
 * What the host's systemd makes of calendar expressions: the next runs of all of them together
 * (the earliest three), `invalid` with systemd's message, or `unavailable` without systemd-analyze.
 */
export type Calendar = { kind: 'unavailable'; reason: string } | { kind: 'invalid'; message: string } | { kind: 'calendar'; next: NextRun[] };

/**
 * `systemd-analyze calendar --iterations=3` on the host: validates OnCalendar expressions with
 * the host's own systemd and gives the next three runs in the host's time zone.
 *
 * @example
 * const cal = await host.fact(calendarFact(['*-*-* 02:00:00']));
 * if (cal.kind === 'calendar') cal.next.map((r) => r.local); // ['Mon 2026-11-23 02:00:00 UTC', …]
 */
export function calendarFact(expressions: readonly string[]): Fact<Calendar> {
  return defineFact(
    `schedule.calendar ${JSON.stringify(expressions)}`,
    sh`command -v systemd-analyze >/dev/null 2>&1 || exit 127; LC_ALL=C systemd-analyze calendar --iterations=3 ${[...expressions]}`,
    parseCalendar,
  );
}

const WHEN = /^\s*(?:Next elapse|Iter\. #\d+): (.+)$/;
const IN_UTC = /^\s*\(in UTC\): (.+)$/;

/**
 * Pure parser of {@link calendarFact}: every "Next elapse"/"Iter. #N" time (with its "(in UTC)"
 * line when the host is not on UTC), merged across expressions, earliest three.
 *
 * @example parseCalendar({ stdout: '  Next elapse: Mon 2026-11-23 02:00:00 UTC\n', stderr: '', exitCode: 0 }).kind // 'calendar'
 */
export function parseCalendar({ stdout, stderr, exitCode }: FactOutput): Calendar {
  if (exitCode === 127) return { kind: 'unavailable', reason: 'systemd-analyze is not installed' };
  if (exitCode !== 0) {
    const message = stderr.trim().split('\n').at(-1) ?? '';
    if (/calendar spec/i.test(message)) return { kind: 'invalid', message };
    return { kind: 'unavailable', reason: message || `systemd-analyze exited with code ${exitCode}` };
  }
  const runs: NextRun[] = [];
  const lines = stdout.split('\n');
  lines.forEach((line, i) => {
    const when = WHEN.exec(line);
    if (!when?.[1] || when[1] === 'never') return;
    const utc = IN_UTC.exec(lines[i + 1] ?? '')?.[1] ?? when[1];
    runs.push({ local: when[1], utcMs: parseUtc(utc) });
  });
  runs.sort((a, b) => a.utcMs - b.utcMs);
  return { kind: 'calendar', next: runs.filter((r, i) => i === 0 || r.utcMs !== runs[i - 1]?.utcMs).slice(0, 3) };
}

/** `Mon 2026-11-23 02:00:00 UTC` → ms since epoch. */
function parseUtc(text: string): number {
  const m = /(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) UTC$/.exec(text);
  if (!m) throw new Error(`unexpected time ${JSON.stringify(text)} (expected a UTC time)`);
  return Date.parse(`${m[1]}T${m[2]}Z`);
}

/** The host's time zone (an IANA name such as `Europe/Berlin`), which cron uses. */
export type HostTimezone = { kind: 'timezone'; name: string } | { kind: 'unknown' };

/**
 * The host's time zone from `/etc/timezone` or the `/etc/localtime` link.
 *
 * @example const tz = await host.fact(hostTimezone); // { kind: 'timezone', name: 'Etc/UTC' }
 */
export const hostTimezone: Fact<HostTimezone> = defineFact(
  'schedule.timezone',
  sh`cat /etc/timezone 2>/dev/null || readlink /etc/localtime 2>/dev/null || true`,
  parseTimezone,
);

/**
 * Pure parser of {@link hostTimezone}.
 *
 * @example parseTimezone({ stdout: '/usr/share/zoneinfo/Europe/Berlin\n', stderr: '', exitCode: 0 }) // { kind: 'timezone', name: 'Europe/Berlin' }
 */
export function parseTimezone({ stdout }: FactOutput): HostTimezone {
  const name = stdout.trim().replace(/^.*\/zoneinfo\//, '');
  return /^[A-Za-z_]+(?:\/[A-Za-z0-9_+-]+)*$/.test(name) ? { kind: 'timezone', name } : { kind: 'unknown' };
}
