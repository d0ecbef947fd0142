// One small task run inside hosts reached through a parent on lab1 (a chroot, a docker container):
// the inventory of lab1 and its children, and the task file, shared by the tests of each way in.
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ParentSpec } from '../../../lib/index.ts';
import type { Lab } from '../../../lab/lab.ts';
import { writeTaskFile } from './task-file.ts';
import { tempDir } from '../../support/temp-dir.ts';

/** The config file the task writes: quotes and a `$` that no shell on the way may touch. */
export const INSIDE_CONF = `# it's "quoted"\nname = $HOME\n`;

/**
 * Writes an inventory of lab1 (as root) and `children` behind it, and the `inside` task: a
 * directory, a file, a line, optionally a link, and a guarded shell step under /etc/app.
 *
 * @example const { inventoryFile, task, steps } = await insideScenario(lab, { web: { host: 'lab1', via: 'docker', id: 'web' } });
 */
export async function insideScenario(lab: Lab, children: Readonly<Record<string, ParentSpec>>, opts: { link?: boolean } = {}): Promise<{ inventoryFile: string; task: string; steps: string[] }> {
  const h = lab.host('lab1');
  const inventoryFile = join(tempDir('inside'), 'inventory.ts');
  const hosts = {
    lab1: { address: h.address, user: 'root', privateKeyPath: lab.privateKeyPath, knownHostsPath: lab.knownHostsPath },
    ...Object.fromEntries(Object.entries(children).map(([name, parent]) => [name, { parent }])),
  };
  await writeFile(inventoryFile, `import { defineInventory } from ${JSON.stringify(resolve('lib/index.ts'))};\nexport default defineInventory({ hosts: ${JSON.stringify(hosts, null, 2)} });\n`);
  const link = opts.link ? `\n  await host.run(files.link({ path: '/etc/app/current', target: '/etc/app/app.conf' }));` : '';
  const task = await writeTaskFile(
    'inside',
    ['files', 'sh', 'shell'],
    `{ name: 'inside', async run(host) {
  await host.run(files.directory({ path: '/etc/app', mode: '0750' }));
  await host.run(files.file({ path: '/etc/app/app.conf', content: ${JSON.stringify(INSIDE_CONF)}, mode: '0640' }));
  await host.run(files.line({ path: '/etc/app/extra', line: 'who=' + host.name, match: '^who=', create: true }));${link}
  await host.run(shell({ name: 'stamp', command: sh\`date -u +%F > /etc/app/stamp\`, creates: '/etc/app/stamp' }));
} }`,
  );
  const steps = ['files.directory /etc/app', 'files.file /etc/app/app.conf', 'files.line /etc/app/extra', ...(opts.link ? ['files.link /etc/app/current'] : []), 'shell stamp'];
  return { inventoryFile, task, steps };
}
