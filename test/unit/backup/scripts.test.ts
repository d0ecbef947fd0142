// The scripts' own edges, without hosts: what happens before runCli is reached.
import t from 'tap';
import { main as nightly } from '../../../scripts/nightly-backup.ts';
import { main as restore } from '../../../scripts/restore.ts';
import { startWebhook } from '../../../lab/webhook.ts';
import { tempDir } from '../../support/temp-dir.ts';

function io(argv: string[], env: Record<string, string>) {
  const out = { stdout: '', stderr: '' };
  const stream = (key: 'stdout' | 'stderr') => ({ write: (s: string) => ((out[key] += s), true), isTTY: false }) as unknown as NodeJS.WriteStream;
  // An empty working directory: no .env is read by accident.
  return { out, io: { argv, cwd: tempDir('script'), env, stdout: stream('stdout'), stderr: stream('stderr') } };
}

t.test('nightly-backup: missing keys exit 1 and tell the webhook, unless it is a dry-run', async (t) => {
  const hook = await startWebhook();
  t.teardown(() => hook.close());
  const run = io([], { BACKUP_WEBHOOK_URL: hook.url, BACKUP_ACCESS_KEY_ID: 'AKIDONLY' });
  t.equal(await nightly(run.io), 1);
  t.match(run.out.stderr, /BACKUP_SECRET_ACCESS_KEY is not set/);
  const [post] = await hook.waitFor(1);
  t.match(JSON.parse(post?.body ?? '{}'), { text: /^tackle nightly-backup could not start: environment:\n {2}- BACKUP_SECRET_ACCESS_KEY is not set .*; nothing was backed up$/s });
  t.notMatch(post?.body, /AKIDONLY/);
  const dry = io(['--dry-run'], { BACKUP_WEBHOOK_URL: hook.url });
  t.equal(await nightly(dry.io), 1);
  t.equal(hook.posts.length, 1, 'a dry-run never posts');
  const help = io(['--help'], {});
  t.equal(await nightly(help.io), 0, '--help needs no keys');
  t.match(help.out.stdout, /^nightly-backup: dump, verify, upload[\s\S]*--dry-run[\s\S]*--prometheus STRING\s+after the run, write per-database metrics/);
});

t.test('nightly-backup: --prometheus needs a file name, refused by the CLI before anything runs', async (t) => {
  for (const argv of [['--prometheus'], ['--prometheus', '--dry-run'], ['--prometheus=']]) {
    const run = io(argv, { BACKUP_ACCESS_KEY_ID: 'k', BACKUP_SECRET_ACCESS_KEY: 's' });
    t.equal(await nightly(run.io), 1, argv.join(' '));
    t.match(run.out.stderr, /^Option '--prometheus( <value>)?' argument (missing|is ambiguous)|^--prometheus takes a value/);
    t.match(run.out.stderr, /Task options:\n {2}--prometheus STRING/, 'then the usage');
  }
});

t.test('restore: its own flags are task flags, checked by runCli before anything runs', async (t) => {
  const missing = io(['--backup'], { BACKUP_ACCESS_KEY_ID: 'k', BACKUP_SECRET_ACCESS_KEY: 's' });
  t.equal(await restore(missing.io), 1);
  t.match(missing.out.stderr, /Option '--backup <value>' argument missing/);
  const help = io(['-h'], {});
  t.equal(await restore(help.io), 0, '--help needs no keys');
  t.match(help.out.stdout, /Task options:\n {2}--database STRING\s+only this database[\s\S]*--drop-after\s+drop the restored database after the comparison/);
});
