// The run lock lives in the host's session: held across the run's commands without a channel of
// its own, gone with the session, and never silently lost (a broken session runs nothing more).
import { join } from 'node:path';
import t from 'tap';
import { sh } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { takeHostLock, type LockOptions } from '../../../lib/engine/host-lock.ts';
import { readStateScript } from '../../../lib/engine/pending-handlers.ts';
import { tempDir } from '../../support/temp-dir.ts';

function setup(): { opts: LockOptions; read: ReturnType<typeof readStateScript> } {
  const dir = tempDir('lock');
  return { opts: { timeoutSeconds: 0.2, holder: 'task x from ctl (pid 1)', dir: join(dir, 'lock') }, read: readStateScript('x', join(dir, 'state')) };
}

t.test('held across the commands of a run, in the session: no second process, busy for others', async (t) => {
  const { opts, read } = setup();
  const conn = new LocalConnection('here');
  t.teardown(() => conn.close());
  const lock = await takeHostLock(conn, opts, read);
  t.same(lock.state.pending, []);
  for (let i = 0; i < 3; i++) t.equal((await conn.exec(sh`echo ${String(i)}`)).stdout, `${i}\n`);
  t.equal(conn.stats().channels, 1, 'the lock took no process of its own');
  const other = new LocalConnection('here');
  t.teardown(() => other.close());
  t.match(await takeHostLock(other, opts, read).catch((e: unknown) => e), { phase: 'task', reason: /^busy: task x from ctl \(pid 1\) since \S+ holds the lock/ });
  await conn.close();
  const next = new LocalConnection('here');
  t.teardown(() => next.close());
  t.ok(await takeHostLock(next, opts, read), 'closing the connection let go of it');
});

t.test('a session that broke while holding the lock runs nothing more; the lock is free for others', async (t) => {
  const { opts, read } = setup();
  const conn = new LocalConnection('here');
  t.teardown(() => conn.close());
  await takeHostLock(conn, opts, read);
  const stop = new AbortController();
  const cut = conn.exec(sh`sleep 30`, { signal: stop.signal });
  setTimeout(() => stop.abort(), 50);
  t.match(await cut, { signal: 'SIGHUP' });
  t.match(await conn.exec(sh`echo unlocked`).catch((e: unknown) => e), { reason: /was closed when the run was stopped/ }, 'no step runs without the lock');
  const other = new LocalConnection('here');
  t.teardown(() => other.close());
  t.ok(await takeHostLock(other, { ...opts, timeoutSeconds: 10 }, read), 'the lock went with the session');
});
