import { mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { sh } from '../../../lib/command/command.ts';
import { combine, defineOperation, type Operation } from '../../../lib/ops/operation.ts';
import { pathInfo } from '../../../lib/facts/files.ts';
import { files } from '../../../lib/ops/files.ts';
import { previousVersions, replaceChecked } from '../../../lib/ops/replace-checked.ts';
import { runOp } from '../../support/run-op.ts';
import { tempDir } from '../../support/temp-dir.ts';

// Real runs in a temporary directory on this machine: a site file and its link, as nginx.site
// writes them, checked by a stand-in for `nginx -t` that rejects any file containing "bad".
const root = tempDir('replace-checked');

function layout(name: string): { file: string; link: string; available: string; enabled: string } {
  const available = join(root, name, 'available');
  const enabled = join(root, name, 'enabled');
  mkdirSync(available, { recursive: true });
  mkdirSync(enabled, { recursive: true });
  return { file: join(available, 'site'), link: join(enabled, 'site'), available, enabled };
}

function site(file: string, link: string, content: string): Operation {
  const write = files.file({ path: file, content });
  const relink = files.link({ path: link, target: file });
  return defineOperation({
    name: 'site',
    facts: {},
    parts: [write, relink],
    plan: (_, part) => {
      const change = combine([part(write), part(relink)]);
      return change && replaceChecked(change, [file, link], sh`! grep -r bad ${file}`);
    },
  });
}

t.test('a rejected configuration: the old file and link are back, nothing else is left, the step fails with the check output', async (t) => {
  const l = layout('rejected');
  writeFileSync(l.file, 'good\n');
  symlinkSync('../elsewhere/site', l.link);
  const step = await runOp(site(l.file, l.link, 'bad\n'));
  t.equal(step.status, 'failed');
  t.match(step.error?.stderrTail, /rejected the new .*\/available\/site and .*\/enabled\/site; the previous version is back in place:\n.*bad/);
  t.equal(readFileSync(l.file, 'utf8'), 'good\n', 'the old file');
  t.equal(readlinkSync(l.link), '../elsewhere/site', 'the old link, relative as it was (dangling too)');
  t.same(readdirSync(l.available), ['site'], 'no copy or temporary file left');
  t.same(readdirSync(l.enabled), ['site']);
});

t.test('a rejected configuration where nothing was before: nothing is left', async (t) => {
  const l = layout('fresh');
  const step = await runOp(site(l.file, l.link, 'bad\n'));
  t.equal(step.status, 'failed');
  t.same(readdirSync(l.available), []);
  t.same(readdirSync(l.enabled), []);
});

t.test('an accepted configuration stays, and the copies are removed', async (t) => {
  const l = layout('accepted');
  writeFileSync(l.file, 'good\n');
  const step = await runOp(site(l.file, l.link, 'better\n'));
  t.equal(step.status, 'changed', step.error?.message ?? '');
  t.equal(readFileSync(l.file, 'utf8'), 'better\n');
  t.equal(readlinkSync(l.link), l.file);
  t.same(readdirSync(l.available), ['site']);
  t.same(readdirSync(l.enabled), ['site']);
});

t.test('previousVersions: hidden beside each path, invisible to *.conf and sites-enabled/* includes', async (t) => {
  const p = previousVersions(['/etc/fail2ban/jail.d/sshd.local']);
  t.equal(p.forget.toString(), 'rm -f -- /etc/fail2ban/jail.d/.sshd.local.tackle-prev');
  t.match(p.save.toString(), 'cp -P -p -- /etc/fail2ban/jail.d/sshd.local /etc/fail2ban/jail.d/.sshd.local.tackle-prev');
  t.match(p.restore.toString(), /then mv -fT -- \/etc\/fail2ban\/jail\.d\/\.sshd\.local\.tackle-prev \/etc\/fail2ban\/jail\.d\/sshd\.local; else rm -f -- \/etc\/fail2ban\/jail\.d\/sshd\.local; fi/);
});

t.test('parts plan with the facts the outer operation gathers', async (t) => {
  const l = layout('parts');
  const op = site(l.file, l.link, 'good\n');
  t.same(Object.keys(op.facts), [pathInfo(l.file).key, pathInfo(l.link).key], 'the facts of its parts, by cache key');
});
