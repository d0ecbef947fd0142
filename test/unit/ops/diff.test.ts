import t from 'tap';
import { diffNote, fileDiff } from '../../../lib/ops/diff.ts';

t.test('fileDiff: names only in the headers, /dev/null for a new file', async (t) => {
  t.equal(fileDiff('/etc/app.conf', undefined, 'a=1\n'), '--- /dev/null\n+++ /etc/app.conf\n@@ -0,0 +1,1 @@\n+a=1\n');
  t.equal(fileDiff('/etc/app.conf', 'a=0\n', 'a=1\n'), '--- /etc/app.conf\n+++ /etc/app.conf\n@@ -1,1 +1,1 @@\n-a=0\n+a=1\n');
  t.equal(fileDiff('/etc/app.conf', '', 'a=1\n'), '--- /etc/app.conf\n+++ /etc/app.conf\n@@ -0,0 +1,1 @@\n+a=1\n', 'an empty file that exists keeps its name');
  t.match(fileDiff('/etc/a b\n', 'x\n', 'y\n'), /^--- "\/etc\/a b\\n"\n/, 'unusual names quoted as git does');
});

t.test('fileDiff with a mask: secrets never reach the diff, a change only they make is said', async (t) => {
  const mask = (text: string) => text.replace(/^(key = ).*$/gm, '$1***');
  const shown = fileDiff('/root/.config/rclone/rclone.conf', 'key = OLD\nurl = a\n', 'key = NEW\nurl = b\n', { mask });
  t.match(shown, /-url = a\n\+url = b\n/);
  t.notMatch(shown, /OLD|NEW/);
  t.equal(fileDiff('/r.conf', 'key = OLD\n', 'key = NEW\n', { mask }), '/r.conf: secret values changed (not shown)\n');
  t.equal(fileDiff('/r.conf', undefined, 'key = NEW\n', { mask }), '--- /dev/null\n+++ /r.conf\n@@ -0,0 +1,1 @@\n+key = ***\n');
});

t.test('diffNote: one line in place of a diff', async (t) => {
  t.equal(diffNote('/etc/app/token', 'secret content changed (not shown)'), '/etc/app/token: secret content changed (not shown)\n');
});
