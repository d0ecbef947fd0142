import t from 'tap';
import { captured } from './captured.ts';
import { calendarFact, parseCalendar, parseTimezone } from '../../../lib/facts/schedule.ts';

// Real outputs of `systemd-analyze calendar --iterations=3` on a lab host (systemd 252).
const sample = captured('schedule');

t.test('calendar: the next three runs, merged across expressions', async (t) => {
  t.same(parseCalendar(sample('calendar.one')), {
    kind: 'calendar',
    next: [
      { local: 'Mon 2026-11-23 02:00:00 UTC', utcMs: Date.parse('2026-11-23T02:00:00Z') },
      { local: 'Tue 2026-11-24 02:00:00 UTC', utcMs: Date.parse('2026-11-24T02:00:00Z') },
      { local: 'Wed 2026-11-25 02:00:00 UTC', utcMs: Date.parse('2026-11-25T02:00:00Z') },
    ],
  });
  const two = parseCalendar(sample('calendar.two'));
  t.same(two.kind === 'calendar' ? two.next.map((r) => r.local) : [], ['Fri 2026-11-27 04:30:00 UTC', 'Tue 2026-12-01 04:30:00 UTC', 'Fri 2026-12-04 04:30:00 UTC'], 'Fridays or the 1st and 15th, in time order');
  const berlin = parseCalendar(sample('calendar.berlin'));
  t.same(berlin.kind === 'calendar' ? berlin.next[0] : undefined, { local: 'Mon 2026-11-23 02:00:00 CET', utcMs: Date.parse('2026-11-23T01:00:00Z') }, 'local time shown, UTC from the (in UTC) line');
  t.same(parseCalendar(sample('calendar.never')), { kind: 'calendar', next: [] });
});

t.test('calendar: invalid and unavailable', async (t) => {
  t.same(parseCalendar(sample('calendar.invalid')), { kind: 'invalid', message: "Failed to parse calendar specification '*-*-* 25:00:00': Invalid argument" });
  t.same(parseCalendar({ stdout: '', stderr: '', exitCode: 127 }), { kind: 'unavailable', reason: 'systemd-analyze is not installed' });
  t.equal(calendarFact(['*-*-* 02:00:00']).command.toString(), "command -v systemd-analyze >/dev/null 2>&1 || exit 127; LC_ALL=C systemd-analyze calendar --iterations=3 '*-*-* 02:00:00'");
});

t.test('timezone', async (t) => {
  t.same(parseTimezone(sample('timezone')), { kind: 'timezone', name: 'Etc/UTC' });
  t.same(parseTimezone({ stdout: '/usr/share/zoneinfo/Europe/Berlin\n', stderr: '', exitCode: 0 }), { kind: 'timezone', name: 'Europe/Berlin' });
  t.same(parseTimezone({ stdout: '', stderr: '', exitCode: 0 }), { kind: 'unknown' });
});
