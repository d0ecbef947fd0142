import { quote, sh } from '../command/command.ts';
import { combine, defineOperation, type Action, type CommonOptions, type Operation } from './operation.ts';
import { calendarFact, hostTimezone, type Calendar } from '../facts/schedule.ts';
import { systemdUnit } from '../facts/systemd.ts';
import { files } from './files.ts';
import { cronParser } from '../lazy.ts';
import { refuse } from './refuse.ts';

/** A command to schedule: a shell command line (run by `/bin/sh -c`), or an argument vector run as is. */
export type ScheduledCommand = string | readonly string[];

/** A command, when to run it (cron or OnCalendar), and as whom. @example schedule.timer({ name: 'nightly', cron: '0 2 * * *', command: ['/usr/local/bin/backup'] }) */
export type TimerOptions = CommonOptions & {
  /** Names `NAME.service` and `NAME.timer` in /etc/systemd/system. */
  name: string;
  command: ScheduledCommand;
  description?: string;
  /** Run as this user (default root). */
  user?: string;
  workingDirectory?: string;
  /** Run a missed run at boot (systemd `Persistent=`); default true. */
  persistent?: boolean;
  /** Spread the start by up to this many seconds. */
  randomizedDelaySec?: number;
  state?: 'present' | 'absent';
} & ({ cron: string; onCalendar?: never } | { onCalendar: string | readonly string[]; cron?: never } | { state: 'absent'; cron?: never; onCalendar?: never });

const UNIT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$/;
const USER = /^[a-z_][a-z0-9_-]*\$?$/;
const ALIASES: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};
// One list item of a standard cron field: *, a number or name, a range, a step. No L, W, # or H.
const CRON_ITEM = /^(?:\*|\?|\d+|[A-Za-z]{3})(?:-(?:\d+|[A-Za-z]{3}))?(?:\/\d+)?$/;
const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

/**
 * Checks a cron expression (five fields, or `@daily`-style) with cron-parser; the refusal says
 * what is wrong. Returns the five fields.
 *
 * @example cronFields('0 2 * * *') // ['0', '2', '*', '*', '*']
 */
export function cronFields(expression: string, where = 'schedule'): string[] {
  if (typeof expression !== 'string') throw refuse(where, `cron expression must be a string, got ${typeof expression}`);
  const text = ALIASES[expression.trim()] ?? expression.trim();
  const fields = text.split(/\s+/);
  if (fields.length !== 5) throw refuse(where, `cron expression ${JSON.stringify(expression)} must have five fields (minute hour day-of-month month day-of-week), got ${fields.length}`);
  for (const field of fields) {
    if (!field.split(',').every((item) => CRON_ITEM.test(item))) {
      throw refuse(where, `cron expression ${JSON.stringify(expression)}: ${JSON.stringify(field)} is not a standard cron field (L, W, # and H are not supported; give onCalendar instead)`);
    }
  }
  try {
    cronParser().CronExpressionParser.parse(text, { strict: false });
  } catch (cause) {
    throw refuse(where, `cron expression ${JSON.stringify(expression)} is invalid: ${(cause as Error).message}`);
  }
  return fields;
}

/** Values as a systemd list: `*` for the whole range, runs of three or more as `a..b`. */
function calendarList(values: readonly number[], all: number, show: (n: number) => string): string {
  const sorted = [...new Set(values)].sort((a, b) => a - b);
  if (sorted.length === all) return '*';
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && (sorted[j + 1] as number) === (sorted[j] as number) + 1) j++;
    const a = sorted[i] as number;
    const b = sorted[j] as number;
    if (j - i >= 2) parts.push(`${show(a)}..${show(b)}`);
    else for (let k = i; k <= j; k++) parts.push(show(sorted[k] as number));
    i = j + 1;
  }
  return parts.join(',');
}

const two = (n: number) => String(n).padStart(2, '0');

/**
 * Converts a cron expression to systemd OnCalendar expressions with the same runs. Usually one;
 * two when both day-of-month and day-of-week are restricted, because cron runs when EITHER
 * matches and OnCalendar only when both do. Refuses a malformed expression.
 *
 * @example cronToCalendar('0 2 * * *') // ['*-*-* 02:00:00']
 * @example cronToCalendar('30 4 1,15 * 5') // ['Fri *-*-* 04:30:00', '*-*-01,15 04:30:00']
 */
export function cronToCalendar(expression: string, where = 'schedule'): string[] {
  const raw = cronFields(expression, where);
  const { fields } = cronParser().CronExpressionParser.parse(raw.join(' '), { strict: false });
  const time = `${calendarList(fields.hour.values as number[], 24, two)}:${calendarList(fields.minute.values as number[], 60, two)}:00`;
  const month = calendarList(fields.month.values as number[], 12, two);
  const dom = calendarList(fields.dayOfMonth.values as number[], 31, two);
  // cron counts Sunday as 0 or 7; systemd's week starts on Monday, and its ranges cannot wrap.
  const isoDays = (fields.dayOfWeek.values as number[]).map((d) => (d === 0 || d === 7 ? 7 : d));
  const days = calendarList(isoDays, 7, (d) => WEEKDAYS[d - 1] as string);
  const date = (weekdays: string, day: string) => `${weekdays === '*' ? '' : `${weekdays} `}*-${month}-${day} ${time}`;
  // Vixie cron: when either day field starts with * (or ?), a day must match both fields;
  // otherwise it runs on a day that matches either one.
  if (/^[*?]/.test(raw[2] as string) || /^[*?]/.test(raw[4] as string)) return [date(days, dom)];
  return [date(days, '*'), date('*', dom)];
}

/** systemd's quoting of one ExecStart word: `%` and `$` doubled, quotes and backslashes escaped. */
function systemdWord(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_@%+=:,./$-]+$/.test(escaped) ? escaped : `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function checkCommand(command: unknown, where: string): ScheduledCommand {
  if (typeof command === 'string') {
    if (command.trim() === '' || /[\n\r\0]/.test(command)) throw refuse(where, 'command must be one non-empty line');
    return command;
  }
  if (!Array.isArray(command) || command.length === 0 || !command.every((w) => typeof w === 'string' && !/[\n\r\0]/.test(w))) {
    throw refuse(where, 'command must be a shell command line or a non-empty array of words');
  }
  return command as readonly string[];
}

/** The ExecStart= value: an argument vector as is, a command line through /bin/sh -c. */
function execStart(command: ScheduledCommand): string {
  return (typeof command === 'string' ? ['/bin/sh', '-c', command] : command).map(systemdWord).join(' ');
}

function checkName(name: unknown, where: string, pattern: RegExp): string {
  if (typeof name !== 'string' || !pattern.test(name)) throw refuse(where, `name ${JSON.stringify(name)} must be letters, digits, '_', '-'${pattern === UNIT_NAME ? ", '.'" : ''}`);
  return name;
}

function checkUser(user: unknown, where: string): string | undefined {
  if (user !== undefined && (typeof user !== 'string' || !USER.test(user))) throw refuse(where, `user ${JSON.stringify(user)} is not a user name`);
  return user;
}

function nextRunsText(calendar: Calendar, fallback: () => string): string {
  if (calendar.kind === 'calendar') return calendar.next.length ? calendar.next.map((r) => r.local).join(', ') : 'never';
  return fallback();
}

/** The next three runs computed here with cron-parser, for when the host cannot say. */
function cronNextRuns(expression: string, tz: string): string {
  const runs = cronParser().CronExpressionParser.parse(cronFields(expression).join(' '), { tz }).take(3);
  return `${runs.map((d) => d.toISOString()).join(', ')} (${tz})`;
}

/**
 * Installs a command as a systemd service and timer pair (`NAME.service`, `NAME.timer`, both
 * written atomically), reloads systemd when they changed and enables and starts the timer.
 * The schedule is a cron expression (checked with cron-parser at once: refused before
 * anything runs, and converted to OnCalendar) or OnCalendar expressions; either way the host's
 * `systemd-analyze calendar` validates it when planning (a malformed one fails the step, naming
 * host and step, before anything changes) and the summary shows the next three runs in the
 * host's time. A converged host plans nothing. `state: 'absent'` stops and removes both units.
 *
 * @example
 * await host.run(schedule.timer({ name: 'nightly-backup', cron: '0 2 * * *', command: 'cd /srv/tackle && npx tsx scripts/nightly-backup.ts', workingDirectory: '/srv/tackle' }));
 */
function timer(options: TimerOptions): Operation {
  const where = 'schedule.timer';
  const name = checkName(options.name, where, UNIT_NAME);
  const service = `/etc/systemd/system/${name}.service`;
  const timerPath = `/etc/systemd/system/${name}.timer`;
  if (options.state === 'absent') return removeTimer(name, service, timerPath, options);
  if (options.state !== undefined && options.state !== 'present') throw refuse(where, `state must be 'present' or 'absent'`);

  const command = checkCommand(options.command, where);
  const user = checkUser(options.user, where);
  if (options.workingDirectory !== undefined && (typeof options.workingDirectory !== 'string' || !options.workingDirectory.startsWith('/') || /[\n\0]/.test(options.workingDirectory))) {
    throw refuse(where, 'workingDirectory must be an absolute path');
  }
  if (options.randomizedDelaySec !== undefined && !(Number.isInteger(options.randomizedDelaySec) && options.randomizedDelaySec >= 0)) throw refuse(where, 'randomizedDelaySec must be a whole number of seconds');
  const description = (options.description ?? `${name} (tackle schedule)`).replace(/[\n\r]/g, ' ');
  const cron = 'cron' in options && options.cron !== undefined ? options.cron : undefined;
  const given = 'onCalendar' in options && options.onCalendar !== undefined ? options.onCalendar : undefined;
  if ((cron === undefined) === (given === undefined)) throw refuse(where, 'give exactly one of cron and onCalendar');
  const calendars = cron !== undefined ? cronToCalendar(cron, where) : typeof given === 'string' ? [given] : [...(given ?? [])];
  if (calendars.length === 0 || !calendars.every((c) => typeof c === 'string' && c.trim() !== '' && !/[\n\r\0]/.test(c))) throw refuse(where, 'onCalendar must be one or more one-line calendar expressions');

  const header = `# Managed by tackle (${where} ${name})${cron !== undefined ? `; from cron: ${cron}` : ''}`;
  const serviceText = [
    header,
    '[Unit]',
    `Description=${description}`,
    '',
    '[Service]',
    'Type=oneshot',
    ...(user ? [`User=${user}`] : []),
    ...(options.workingDirectory ? [`WorkingDirectory=${options.workingDirectory}`] : []),
    `ExecStart=${execStart(command)}`,
    '',
  ].join('\n');
  const timerText = [
    header,
    '[Unit]',
    `Description=${description} timer`,
    '',
    '[Timer]',
    ...calendars.map((c) => `OnCalendar=${c}`),
    `Persistent=${options.persistent === false ? 'false' : 'true'}`,
    ...(options.randomizedDelaySec ? [`RandomizedDelaySec=${options.randomizedDelaySec}`] : []),
    '',
    '[Install]',
    'WantedBy=timers.target',
    '',
  ].join('\n');
  const writeService = files.file({ path: service, content: serviceText, mode: '0644' });
  // Checked again when the file is written, by the host's systemd, line by line.
  const writeTimer = files.file({
    path: timerPath,
    content: timerText,
    mode: '0644',
    validate: `sed -n 's/^OnCalendar=//p' %s | while IFS= read -r e; do systemd-analyze calendar "$e" >/dev/null || exit 1; done`,
  });
  const calendar = calendarFact(calendars);
  return defineOperation({
    name: `${where} ${name}`,
    facts: { unit: systemdUnit(`${name}.timer`), calendar },
    parts: [writeService, writeTimer],
    // Not `options` itself: its `name` names the units, not the step.
    options: { notify: options.notify },
    plan: ({ unit: state, calendar: cal }, part) => {
      if (cal.kind === 'invalid') throw refuse(where, `the schedule ${calendars.map((c) => JSON.stringify(c)).join(', ')} is not valid for systemd: ${cal.message}`);
      const files = combine([part(writeService), part(writeTimer)], ', ');
      const known = state.kind === 'unit';
      const enabled = known && state.unitFileState === 'enabled';
      const active = known && state.activeState === 'active';
      const actions: Action[] = [...(files?.actions ?? []), ...(files ? [{ command: sh`systemctl daemon-reload` }] : [])];
      const said = files ? [files.summary] : [];
      if (!enabled || !active) {
        actions.push({ command: sh`systemctl enable --now ${`${name}.timer`}` });
        said.push(`enable and start ${name}.timer`);
      } else if (files) {
        // An active timer keeps its old schedule until it is restarted.
        actions.push({ command: sh`systemctl restart ${`${name}.timer`}` });
        said.push(`restart ${name}.timer`);
      }
      if (actions.length === 0) return undefined;
      const next = nextRunsText(cal, () => (cron !== undefined ? `${cronNextRuns(cron, 'UTC')}; the host cannot say: ${cal.kind === 'unavailable' ? cal.reason : ''}` : 'unknown'));
      return {
        summary: `${said.join(', ')}; OnCalendar=${calendars.join(' | ')}; next runs: ${next}`,
        actions,
        ...(files?.diff ? { diff: files.diff } : {}),
      };
    },
  });
}

function removeTimer(name: string, service: string, timerPath: string, options: CommonOptions): Operation {
  const removals = [files.file({ path: timerPath, state: 'absent' }), files.file({ path: service, state: 'absent' })];
  return defineOperation({
    name: `schedule.timer ${name} absent`,
    facts: { unit: systemdUnit(`${name}.timer`) },
    parts: removals,
    options: { notify: options.notify },
    plan: ({ unit: state }, part) => {
      const running = state.kind === 'unit' && (state.unitFileState === 'enabled' || state.activeState === 'active');
      const removed = combine(removals.map(part), ', ');
      const actions: Action[] = [...(running ? [{ command: sh`systemctl disable --now ${`${name}.timer`}` }] : []), ...(removed ? [...removed.actions, { command: sh`systemctl daemon-reload` }] : [])];
      if (actions.length === 0) return undefined;
      return { summary: [...(running ? [`stop and disable ${name}.timer`] : []), ...(removed ? [removed.summary] : [])].join(', '), actions };
    },
  });
}

/** A cron.d entry. @example schedule.cron({ name: 'nightly', cron: '0 2 * * *', command: '/usr/local/bin/backup' }) */
export interface CronOptions extends CommonOptions {
  /** The file /etc/cron.d/NAME (letters, digits, '_', '-': cron ignores names with dots). */
  name: string;
  cron: string;
  command: ScheduledCommand;
  /** The user the line runs as (default root). */
  user?: string;
  state?: 'present' | 'absent';
}

/**
 * The cron alternative to {@link timer}, for hosts without systemd: one line in
 * `/etc/cron.d/NAME` (mode 0644), the expression checked with cron-parser at once; the summary
 * shows the next three runs in the host's time zone. Install one or the other, not both.
 *
 * @example
 * await host.run(schedule.cron({ name: 'nightly-backup', cron: '0 2 * * *', command: 'cd /srv/tackle && npx tsx scripts/nightly-backup.ts' }));
 */
function cronFile(options: CronOptions): Operation {
  const where = 'schedule.cron';
  const name = checkName(options.name, where, /^[A-Za-z0-9_-]+$/);
  const path = `/etc/cron.d/${name}`;
  if (options.state === 'absent') {
    const remove = files.file({ path, state: 'absent' });
    return defineOperation({ name: `${where} ${name} absent`, facts: {}, parts: [remove], options: { notify: options.notify }, plan: (_, part) => part(remove) });
  }
  const fields = cronFields(options.cron, where);
  const command = checkCommand(options.command, where);
  const user = checkUser(options.user ?? 'root', where) as string;
  // In a crontab an unescaped % ends the command.
  const line = (typeof command === 'string' ? command : command.map(quote).join(' ')).replace(/%/g, '\\%');
  const content = [
    `# Managed by tackle (${where} ${name})`,
    'SHELL=/bin/sh',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    `${fields.join(' ')} ${user} ${line}`,
    '',
  ].join('\n');
  const write = files.file({ path, content, mode: '0644' });
  return defineOperation({
    name: `${where} ${name}`,
    facts: { tz: hostTimezone },
    parts: [write],
    options: { notify: options.notify },
    plan: ({ tz }, part) => {
      const change = part(write);
      if (!change) return undefined;
      return { ...change, summary: `${change.summary}; cron ${fields.join(' ')}; next runs: ${cronNextRuns(options.cron, tz.kind === 'timezone' ? tz.name : 'UTC')}` };
    },
  });
}

/**
 * Schedules: systemd timers (the default) and cron.d entries.
 *
 * @example
 * await host.run(schedule.timer({ name: 'nightly-backup', cron: '0 2 * * *', command: ['/usr/local/bin/backup'] }));
 */
export const schedule = { timer, cron: cronFile };
