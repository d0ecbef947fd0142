import t from 'tap';
import { inspect } from 'node:util';
import { Command, mask, quote, raw, secret, sh } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';

const HOSTILE = ["'; touch /tmp/pwned #", '$(id)', '`id`', 'a\nb', 'ünïcødé ✓', '', ' lead', 'x"y', '\\', '*', '-n', "it's", '$HOME', '!!', '%s'];

t.test('quote leaves safe words bare and single-quotes the rest', async (t) => {
  t.equal(quote('nginx'), 'nginx');
  t.equal(quote('/etc/nginx/sites-available/app.conf'), '/etc/nginx/sites-available/app.conf');
  t.equal(quote('a b'), "'a b'");
  t.equal(quote("it's"), "'it'\\''s'");
  t.equal(quote(''), "''");
});

t.test('hostile values arrive literally through a real shell', async (t) => {
  const conn = new LocalConnection('local');
  for (const value of HOSTILE) {
    const r = await conn.exec(sh`printf '%s' ${value}`);
    t.equal(r.stdout, value, `printf of ${JSON.stringify(value)}`);
  }
  const arr = await conn.exec(sh`printf '[%s]' ${HOSTILE}`);
  t.equal(arr.stdout, HOSTILE.map((v) => `[${v}]`).join(''), 'arrays become one word per element');
});

t.test('asArgument nests a command as one word, twice over', async (t) => {
  const conn = new LocalConnection('local');
  for (const value of HOSTILE) {
    const inner = sh`printf '%s' ${value}`;
    const once = await conn.exec(sh`sh -c ${inner.asArgument()}`);
    t.equal(once.stdout, value);
    const twice = await conn.exec(sh`sh -c ${sh`sh -c ${inner.asArgument()}`.asArgument()}`);
    t.equal(twice.stdout, value);
  }
});

t.test('secrets: real on the host, *** everywhere else', async (t) => {
  const pw = secret("s3cr'et $(id)");
  const cmd = sh`echo ${pw} | chpasswd`;
  t.equal(cmd.toString(), 'echo *** | chpasswd');
  t.equal(JSON.stringify({ cmd, pw }), '{"cmd":"echo *** | chpasswd","pw":"***"}');
  t.equal(inspect(pw), '***');
  t.match(inspect(cmd), /\*\*\*/);
  t.notMatch(inspect(cmd), /s3cr/);
  t.equal(`${pw}`, '***');
  const nested = sh`sudo sh -c ${cmd.asArgument()}`;
  t.equal(nested.toString(), "sudo sh -c 'echo *** | chpasswd'");
  t.same(nested.secrets(), ["s3cr'et $(id)"]);
  const conn = new LocalConnection('local');
  const r = await conn.exec(sh`sh -c ${sh`printf %s ${pw}`.asArgument()}`);
  t.equal(r.stdout, "s3cr'et $(id)", 'the nested secret is quoted correctly when revealed');
  t.equal(mask(`oops ${pw.reveal()} leaked`, nested.secrets()), 'oops *** leaked');
});

t.test('raw and nested commands are inserted verbatim', async (t) => {
  t.equal(sh`ls ${raw('*.conf')} ${sh`| wc -l`}`.toString(), 'ls *.conf | wc -l');
  t.equal(Command.join([sh`a`, sh`b ${'c d'}`], ' && ').toString(), "a && b 'c d'");
});

t.test('misuse is a TypeError at once', async (t) => {
  t.throws(() => sh`echo ${Promise.resolve('x') as never}`, TypeError);
  t.throws(() => sh`echo ${undefined as never}`, TypeError);
  t.throws(() => sh`echo ${{} as never}`, TypeError);
  t.throws(() => secret(1 as never), TypeError);
});
