import t from 'tap';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { parsePathInfo, pathInfo, sha256Hex, splitPaths } from '../../../lib/facts/files.ts';
import { gatherFacts } from '../../../lib/facts/gather.ts';
import { tempDir } from '../../support/temp-dir.ts';

// Output of pathInfo's command as a Debian 12 machine prints it (dash, GNU coreutils).
const captured = (stdout: string, stderr = '', exitCode: number | null = 0) => parsePathInfo({ stdout, stderr, exitCode });

t.test('a small text file comes with its content', async (t) => {
  const info = captured('file\n644\nroot\nroot\n0\n0\n11\ncontent\naGVsbG8Kd29ybGQ=');
  t.same(info, {
    kind: 'file',
    mode: '0644',
    owner: 'root',
    group: 'root',
    uid: 0,
    gid: 0,
    size: 11,
    sha256: '26c60a61d01db5836ca70fefd44a6a016620413c8ef5f259a6c5612d4f79d3b8',
    content: 'aGVsbG8Kd29ybGQ=',
  });
  t.equal(info.kind === 'file' && Buffer.from(info.content ?? '', 'base64').toString(), 'hello\nworld');
});

t.test('an empty file has empty content, not none', async (t) => {
  const info = captured('file\n644\ndaemon\nbin\n1\n2\n0\ncontent\n');
  t.match(info, { kind: 'file', owner: 'daemon', group: 'bin', uid: 1, gid: 2, size: 0, content: '' });
});

t.test('special bits keep four digits', async (t) => {
  const info = captured('file\n4755\nroot\nroot\n0\n0\n10\ncontent\nIyEvYmluL3NoCg==');
  t.match(info, { kind: 'file', mode: '4755' });
  t.match(captured('directory\n1777\nroot\nroot\n0\n0\n'), { kind: 'directory', mode: '1777', owner: 'root', uid: 0 });
});

t.test('a file over the limit has a hash but no content', async (t) => {
  const info = captured('file\n644\nroot\nroot\n0\n0\n300000\n886715e4051e827f4fe215df3053af3f85ad0d352db2c829c7487af6d78efe30  -\n');
  t.match(info, { kind: 'file', size: 300000, sha256: '886715e4051e827f4fe215df3053af3f85ad0d352db2c829c7487af6d78efe30' });
  t.notOk('content' in info);
});

t.test('binary content is returned as is (base64)', async (t) => {
  const info = captured('file\n644\nroot\nroot\n0\n0\n3\ncontent\nAAH/');
  t.match(info, { kind: 'file', content: 'AAH/' });
});

t.test('a file that changed after stat is described by the bytes read', async (t) => {
  const info = captured('file\n644\nroot\nroot\n0\n0\n99\ncontent\naGVsbG8Kd29ybGQ=');
  t.match(info, { kind: 'file', size: 11, sha256: sha256Hex('hello\nworld'), content: 'aGVsbG8Kd29ybGQ=' });
});

t.test('the script reads real files as the parser expects', async (t) => {
  const dir = tempDir('pathinfo');
  writeFileSync(join(dir, 'small'), 'hello\nworld');
  writeFileSync(join(dir, 'big'), Buffer.alloc(300_000, 1));
  writeFileSync(join(dir, 'empty'), '');
  const conn = new LocalConnection('local');
  const [small, big, empty] = await gatherFacts(conn, ['small', 'big', 'empty'].map((f) => pathInfo(join(dir, f))));
  t.match(small, { kind: 'file', size: 11, sha256: sha256Hex('hello\nworld'), content: 'aGVsbG8Kd29ybGQ=' });
  t.match(big, { kind: 'file', size: 300_000, sha256: sha256Hex(Buffer.alloc(300_000, 1)) });
  t.notOk(big && typeof big === 'object' && 'content' in big, 'no content over the limit');
  t.match(empty, { kind: 'file', size: 0, content: '' });
  t.equal(conn.stats().commands, 1, 'the three paths are read as a group');
});

t.test('paths read together say what each says alone, in one command', async (t) => {
  const dir = tempDir('pathgroup');
  writeFileSync(join(dir, 'small'), 'hello\nworld');
  writeFileSync(join(dir, 'big'), Buffer.alloc(300_000, 7));
  writeFileSync(join(dir, 'empty'), '');
  writeFileSync(join(dir, "it's $(id) *"), Buffer.from([0, 1, 2, 255]));
  mkdirSync(join(dir, 'sub'));
  chmodSync(join(dir, 'sub'), 0o2750);
  symlinkSync('../t\narget', join(dir, 'link'));
  symlinkSync('small', join(dir, 'link2'));
  const missing = await gatherFacts(new LocalConnection('local'), [pathInfo(join(dir, 'none1')), pathInfo(join(dir, 'none2'))]);
  t.same(missing, [{ kind: 'missing' }, { kind: 'missing' }], 'a group of missing paths only');
  const links = await gatherFacts(new LocalConnection('local'), [pathInfo(join(dir, 'link')), pathInfo(join(dir, 'link2'))]);
  t.same(links, [{ kind: 'link', target: '../t\narget' }, { kind: 'link', target: 'small' }], 'a group of links only');
  const names = ['small', 'link', 'big', 'missing', 'sub', 'empty', "it's $(id) *", 'link2', 'small/below', 'sub/none'];
  const grouped = new LocalConnection('local');
  const together = await gatherFacts(grouped, names.map((f) => pathInfo(join(dir, f))));
  t.equal(grouped.stats().commands, 1);
  const alone = [];
  for (const f of names) alone.push(...(await gatherFacts(new LocalConnection('local'), [pathInfo(join(dir, f))])));
  t.same(together, alone);
  t.match(together, [
    { kind: 'file', content: 'aGVsbG8Kd29ybGQ=' },
    { kind: 'link', target: '../t\narget' },
    { kind: 'file', size: 300_000, sha256: sha256Hex(Buffer.alloc(300_000, 7)) },
    { kind: 'missing' },
    { kind: 'directory', mode: '2750' },
    { kind: 'file', size: 0, content: '' },
    { kind: 'file', content: 'AAEC/w==' },
    { kind: 'link', target: 'small' },
    { kind: 'missing' },
    { kind: 'missing' },
  ]);
});

t.test('a group whose files changed while they were read says so, for every path', async (t) => {
  const out = (content: string) => ({ stdout: `file\nfile\n--\n644 root root 0 0 2 regular file\n644 root root 0 0 3 regular file\n--\n\n--\n${Buffer.from(content).toString('base64')}\n`, stderr: '', exitCode: 0 });
  t.match(splitPaths(out('abcde'), ['/a', '/b']).map((o) => parsePathInfo(o)), [{ content: 'YWI=' }, { content: 'Y2Rl' }]);
  t.throws(() => splitPaths(out('abcdef'), ['/a', '/b']), /6 bytes for sizes adding up to 5/);
  t.throws(() => splitPaths(out('abcd'), ['/a', '/b']), /one changed or could not be read/);
  const gone = { stdout: 'file\n--\n\n--\n\n--\n\n', stderr: "stat: cannot statx '/a': No such file or directory\n", exitCode: 0 };
  t.throws(() => splitPaths(gone, ['/a']), /\/a changed while it was read \(file, then gone\)/);
  t.throws(() => splitPaths({ stdout: 'file\n', stderr: '', exitCode: 0 }, ['/a']), /unexpected output/);
});

t.test('a symlink is reported, not followed; its target may hold a newline', async (t) => {
  t.same(captured('link\nLi4vdAphcmdldA=='), { kind: 'link', target: '../t\narget' });
});

t.test('missing paths, also below a file or a missing directory', async (t) => {
  t.same(captured('missing\n'), { kind: 'missing' });
});

t.test('fifos, sockets and devices are "other"', async (t) => {
  t.same(captured('other\nfifo\n'), { kind: 'other', type: 'fifo' });
  t.same(captured('other\nsocket\n'), { kind: 'other', type: 'socket' });
  t.same(captured('other\ncharacter special file\n'), { kind: 'other', type: 'character special file' });
});

t.test('a failure to read is an error, not a guess', async (t) => {
  // As nobody on /etc/shadow: stat works, reading does not.
  t.throws(() => captured('file\n640\nroot\nshadow\n0\n42\n655\n', 'sh: 8: cannot open /etc/shadow: Permission denied\n', 2), /Permission denied/);
  t.throws(() => captured('what\n'), /unexpected output/);
  t.throws(() => captured('file\n644\nroot\nroot\n0\n0\n3\nnot-a-hash\n'), /unexpected file output/);
});

t.test('the key names the path; the command quotes it', async (t) => {
  const fact = pathInfo("/tmp/it's $(id)");
  t.equal(fact.key, "files.path:/tmp/it's $(id)");
  t.match(fact.command.toString(), /^p='\/tmp\/it'\\''s \$\(id\)'\n/);
});
