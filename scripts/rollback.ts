// Put hosts back on an earlier release of an app: the one that ran healthily before the current
// one (never one recorded failed or rolled back), or a named one
// (see scripts/releases.ts for the ids). The service is restarted and must be healthy again;
// when it is not, the host is switched back to the release it was on.
//
//   npx tsx scripts/rollback.ts --limit web1
//   npx tsx scripts/rollback.ts --limit web1 --to 20250304T050607Z-v1.4.1
//
// The same inventory vars as scripts/deploy.ts describe the app. For a blue/green app (var
// blueGreen) the other color takes the traffic back through the nginx upstream: without a
// restart when it still runs that release, else started and checked on its port first.
import { defineTask, deploy, runIfMain, v } from '../lib/index.ts';
import { serviceOptions, serviceVars } from './deploy.ts';

export const rollbackTask = defineTask({
  name: 'rollback',
  vars: {
    ...serviceVars,
    /** The release id to go back to (`--to`); default the one that ran healthily before the current one. */
    to: v.fileName().optional(),
  },
  flags: {
    to: { type: 'string', description: 'release id to go back to (default: the one that ran healthily before the current one)' },
  },
  async run(host) {
    const { to } = host.vars;
    await host.run(deploy.rollback({ ...serviceOptions(host.vars), ...(to ? { to } : {}) }));
  },
});

export default rollbackTask;

await runIfMain(import.meta, rollbackTask);
