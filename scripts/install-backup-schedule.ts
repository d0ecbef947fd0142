// Installs the nightly backup as a systemd timer (or a cron.d entry) on the host that runs it:
// the machine where tackle is checked out with its inventory and `.env` (the controller, or an
// ops box), because the backup is driven from there over SSH. Hosts get the schedule when they
// have a `backupSchedule` var; the cron expression is checked with the inventory, before any host
// is contacted, and the plan shows the next three runs.
//
//   npx tsx scripts/install-backup-schedule.ts [--limit ops] [--dry-run]
//
// inventory.ts, e.g. the controller itself:
//   ops: { connection: 'local', vars: { backupSchedule: { workingDirectory: '/srv/tackle' } } }
import { cronVar, defineTask, quote, runIfMain, schedule, v } from '../lib/index.ts';

export const scheduleVars = {
  backupSchedule: v
    .object({
      /** When, in the host's time zone (default 02:00 every night). */
      cron: cronVar().default('0 2 * * *'),
      /** Where tackle is checked out on that host. */
      workingDirectory: v.path(),
      /** A shell command line run there. */
      command: v.match(/^[^\n\r\0]*\S[^\n\r\0]*$/, 'one command line').default('npx tsx scripts/nightly-backup.ts'),
      /** The unit names: NAME.service and NAME.timer. */
      name: v.match(/^[A-Za-z0-9][A-Za-z0-9_-]{0,200}$/, "a name of letters, digits, '_' and '-'").default('tackle-nightly-backup'),
      user: v.userName().optional(),
      randomizedDelaySec: v.integer({ min: 0 }).optional(),
      /** `cron` writes /etc/cron.d/NAME instead, for a host without systemd (it needs the cron package). */
      via: v.oneOf('timer', 'cron').default('timer'),
    })
    .optional(),
};

/**
 * The schedule as a task.
 *
 * @example await runCli(installBackupSchedule, io);
 */
export const installBackupSchedule = defineTask({
  name: 'install-backup-schedule',
  vars: scheduleVars,
  async run(host) {
    const s = host.vars.backupSchedule;
    if (!s) return;
    if (s.via === 'cron') {
      const command = `cd ${quote(s.workingDirectory)} && ${s.command}`;
      await host.run(schedule.cron({ name: s.name, cron: s.cron, command, ...(s.user !== undefined ? { user: s.user } : {}) }));
      return;
    }
    await host.run(
      schedule.timer({
        name: s.name,
        cron: s.cron,
        command: s.command,
        workingDirectory: s.workingDirectory,
        description: 'tackle nightly PostgreSQL backup',
        ...(s.user !== undefined ? { user: s.user } : {}),
        ...(s.randomizedDelaySec !== undefined ? { randomizedDelaySec: s.randomizedDelaySec } : {}),
      }),
    );
  },
});

export default installBackupSchedule;

await runIfMain(import.meta, installBackupSchedule);
