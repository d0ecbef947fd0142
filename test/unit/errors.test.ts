import t from 'tap';
import { TackleError } from '../../lib/errors.ts';
import { refuse } from '../../lib/ops/refuse.ts';

t.test('a refusal inside its own step names the operation once', async (t) => {
  const err = refuse('files.file', 'path must be absolute, got "x"');
  t.equal(err.message, 'files.file: path must be absolute, got "x"', 'alone, it says what refused');
  t.equal(err.at('web1', 'files.file /etc/x.conf').message, 'web1 › files.file /etc/x.conf: path must be absolute, got "x"');
  t.equal(err.at('web1', 'reload nginx › systemd.service nginx').message, 'web1 › reload nginx › systemd.service nginx: files.file: path must be absolute, got "x"', 'another op in a handler step keeps it');
  t.equal(refuse('systemd.service', 'no').at('web1', 'reload nginx › systemd.service nginx').message, 'web1 › reload nginx › systemd.service nginx: no');
  t.equal(err.at('web1', 'files.line /etc/x').message, 'web1 › files.line /etc/x: files.file: path must be absolute, got "x"', "a part's refusal in another step keeps its name");
  t.equal(err.at('web1').reason, 'files.file: path must be absolute, got "x"', 'the reason field is unchanged');
});

t.test('a message lists where, why and what ran', async (t) => {
  const err = new TackleError({ phase: 'command', host: 'web1', step: 'shell x', reason: 'the command failed', command: 'false', exitCode: 127, stderrTail: 'a\nb' });
  t.equal(err.message, 'web1 › shell x: the command failed\n  command: false\n  exit code: 127 (command not found)\n  stderr: a\n          b');
});
