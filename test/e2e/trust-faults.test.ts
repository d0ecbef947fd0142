// No host can end the run for the others (issue 8, item 3). One lab host is reached through a
// fault-injecting proxy on the controller; for each transport fault the CLI runs a small task on
// all hosts: the faulty host is reported with a plain reason, the others do every step, the recap
// and the JSON report are written, the exit code is 2, there is no stack trace, and it ends in
// bounded time.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { startFaultProxy, type Fault, type FaultProxy } from '../../lab/fault-proxy.ts';
import { withLab } from '../../lab/lab.ts';
import { labInventory, runTaskCli } from './support/cli.ts';

const lab = await withLab(t, 3);
const [good1, good2, faulty] = lab.hosts.map((h) => h.name) as [string, string, string];
const dir = await mkdtemp(join(tmpdir(), 'tackle-faults-'));
const task = join(dir, 'faults.mts');
await writeFile(
  task,
  `import { defineTask, files, isMain, runCli, sh, shell, v } from ${JSON.stringify(resolve('lib/index.ts'))};
const task = defineTask({ name: 'faults', vars: { dir: v.string() }, async run(host) {
  const dir = host.vars.dir;
  await host.run(files.directory({ path: dir, mode: '0755' }));
  await host.run(files.file({ path: dir + '/one', content: 'one ' + host.name + '\\n' }));
  await host.run(shell({ name: 'slow', command: sh\`sleep 4 && echo slow > \${dir + '/slow'}\` }));
  await host.run(files.file({ path: dir + '/two', content: 'two ' + host.name + '\\n' }));
} });
if (isMain(import.meta.url, process.argv)) process.exitCode = await runCli(task, { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr });
`,
);
const STEPS = (d: string) => [`files.directory ${d}`, `files.file ${d}/one`, 'shell slow', `files.file ${d}/two`];
// A CLI start (tsx) plus the task (4 s of sleep) plus the default 10 s connect timeout, with ample
// slack for a machine shared with other labs. A hang would be minutes.
const BOUND_MS = 60_000;
const faultyLine = (await readFile(lab.knownHostsPath, 'utf8')).split('\n').find((l) => l.startsWith(`${lab.host(faulty).address} `));
if (!faultyLine) throw new Error(`no known_hosts line for ${faulty}`);

/**
 * An inventory where `faulty` is reached through the proxy, directly or through the jump host
 * `good1`, with its host key known under [ADDRESS]:PORT.
 */
async function inventoryThrough(proxy: FaultProxy, address: string, jump: boolean): Promise<string> {
  const knownHostsPath = join(dir, `known_hosts_${proxy.port}`);
  await writeFile(knownHostsPath, `${faultyLine!.replace(/^\S+/, `[${address}]:${proxy.port}`)}\n`);
  return labInventory(lab, { [faulty]: { address, port: proxy.port, knownHostsPath, ...(jump ? { jump: good1 } : {}) } });
}

type Case = { fault: Fault; reason: (address: string) => RegExp; midStep?: boolean; jump?: boolean };
const esc = (s: string) => s.replace(/\./g, '\\.');
const cases: Case[] = [
  { fault: 'reset-handshake', reason: (a) => new RegExp(`^connection to ${esc(a)}:\\d+ was reset during the handshake$`) },
  { fault: 'garbage-banner', reason: (a) => new RegExp(`^${esc(a)}:\\d+ does not speak SSH \\(.+\\); is that the sshd port\\?$`) },
  { fault: 'silent', reason: (a) => new RegExp(`^no SSH answer from ${esc(a)}:\\d+ within 10 s; the host is down or the port is filtered$`) },
  { fault: 'double-fault', reason: (a) => new RegExp(`^${esc(a)}:\\d+ does not speak SSH \\(.+\\); is that the sshd port\\?$`) },
  { fault: 'pass', midStep: true, reason: (a) => new RegExp(`^connection to ${esc(a)} lost: the connection was reset$`) },
  // Through a jump host the fault reaches tackle as a closed channel, not as a TCP reset.
  { fault: 'reset-handshake', jump: true, reason: (a) => new RegExp(`^${esc(a)}:\\d+ closed the connection before the SSH handshake$`) },
  { fault: 'double-fault', jump: true, reason: (a) => new RegExp(`^${esc(a)}:\\d+ does not speak SSH \\(.+\\); is that the sshd port\\?$`) },
  { fault: 'pass', jump: true, midStep: true, reason: (a) => new RegExp(`^connection to ${esc(a)} closed$`) },
];

for (const { fault, reason, midStep, jump } of cases) {
  const title = `${midStep ? 'connection dropped mid-command' : fault}${jump ? ` behind jump host ${good1}` : ''}`;
  t.test(`${title}: that host is reported, the others finish, recap and report written, exit 2`, async (t) => {
    // Behind the jump host the proxy listens on the lab bridge, where lab hosts reach the controller.
    const address = jump ? lab.bridgeAddress : '127.0.0.1';
    const proxy = await startFaultProxy({ host: lab.host(faulty).address, port: 22 }, fault, address);
    t.teardown(() => proxy.close());
    const d = `/tmp/faults-${fault}${jump ? '-jump' : ''}`;
    const started = Date.now();
    const cli = runTaskCli(task, ['--inventory', await inventoryThrough(proxy, address, jump ?? false), '--var', `dir=${d}`]);
    if (midStep) {
      // Drop the connection once the slow command is running on the host.
      for (let i = 0; i < 300 && (await lab.ssh(faulty, 'pgrep -x sleep >/dev/null && echo running || true')).stdout.trim() !== 'running'; i++) await sleep(100);
      proxy.drop();
    }
    const run = await cli;
    const elapsed = Date.now() - started;
    const info = { stdout: run.stdout.slice(-3000), stderr: run.stderr.slice(-3000) };

    t.equal(run.code, 2, 'exit code 2', info);
    t.ok(elapsed < BOUND_MS, `ended in bounded time (${elapsed} ms)`);
    t.notMatch(run.stderr, /^\s+at .*:\d+:\d+\)?$/m, 'no stack trace on stderr');
    t.notMatch(run.stderr, /Unhandled|Error:/, 'no crash message on stderr');

    const report = run.report;
    t.ok(report, 'the JSON report was written');
    const byName = Object.fromEntries((report?.hosts ?? []).map((h) => [h.name, h]));
    for (const name of [good1, good2]) {
      t.equal(byName[name]?.status, 'changed', `${name} changed`);
      t.same(
        byName[name]?.steps.map((s) => [s.name, s.status]),
        STEPS(d).map((s) => [s, 'changed']),
        `${name} did every step`,
      );
      const files = await lab.ssh(name, `cat ${d}/one ${d}/slow ${d}/two`);
      t.equal(files.stdout, `one ${name}\nslow\ntwo ${name}\n`, `${name}: every file is on the host`);
    }

    const bad = byName[faulty];
    t.equal(bad?.status, 'unreachable', `${faulty} is unreachable`);
    const error = midStep ? bad?.steps.find((s) => s.status === 'failed')?.error : bad?.error;
    t.match(error, { phase: 'connect', host: faulty, reason: reason(address) }, 'a plain reason');
    t.same(report?.summary, { ok: 0, changed: 2, failed: 0, unreachable: 1, skipped: 0 });
    if (midStep) {
      t.same(
        bad?.steps.map((s) => [s.name, s.status]),
        [...STEPS(d).slice(0, 2).map((s) => [s, 'changed']), ['shell slow', 'failed']],
        'the steps before ran; the step under way failed; no later step started',
      );
    } else t.same(bad?.steps, [], 'no step ran');
    const later = await lab.ssh(faulty, `test -e ${d}/two && echo present || echo absent`);
    t.equal(later.stdout, 'absent\n', `${faulty}: no step after the fault reached the host`);

    t.match(run.stdout, new RegExp(`RECAP faults[\\s\\S]*\\n${faulty} unreachable:\\n  ${faulty} › (?:connect|shell slow): `), 'the recap names the host');
    t.ok(error && run.stdout.includes(error.reason), 'the recap gives the reason');
    t.ok(proxy.accepted >= 1, 'the host was tried through the proxy');
  });
}
