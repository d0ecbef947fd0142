import t from 'tap';
import { hostnameFact, parseHostname, parseSwap, parseZoneInfo, swapFact, zoneInfoFact } from '../../../lib/facts/server.ts';

const out = (stdout: string) => ({ stdout, stderr: '', exitCode: 0 });

t.test('hostname: captured before and after server.hostname', async (t) => {
  t.same(parseHostname(out('transient hx1\nstatic hx1\n')), { transient: 'hx1', static: 'hx1' });
  t.same(parseHostname(out('transient web1.example.test\nstatic web1.example.test\n')), { transient: 'web1.example.test', static: 'web1.example.test' });
  t.same(parseHostname(out('transient localhost\nstatic \n')), { transient: 'localhost', static: '' }, 'no /etc/hostname');
  t.equal(hostnameFact.key, 'server.hostname');
});

t.test('zone info: captured', async (t) => {
  t.same(parseZoneInfo(out('zone\n')), { kind: 'zone' });
  t.same(parseZoneInfo(out('unknown\n')), { kind: 'unknown' });
  t.same(parseZoneInfo(out('no-database\n')), { kind: 'no-database' });
  t.throws(() => parseZoneInfo(out('')), /unexpected output/);
  t.equal(zoneInfoFact('Europe/Berlin').key, 'host.zoneinfo:Europe/Berlin');
  t.match(zoneInfoFact('Europe/Berlin').command.toString(), /\[ -f \/usr\/share\/zoneinfo\/Europe\/Berlin \]/);
});

t.test('swap: captured (no file; a file made by hand, mode 644, not in use)', async (t) => {
  t.same(parseSwap(out('missing\ninactive\nswappiness 60\n')), { file: { kind: 'missing' }, active: false, swappiness: 60 });
  t.same(parseSwap(out('file 8388608 644 root yes\ninactive\nswappiness 60\n')), { file: { kind: 'file', size: 8388608, mode: '0644', owner: 'root', swap: true }, active: false, swappiness: 60 });
  t.same(parseSwap(out('other directory\nactive\nswappiness \n')), { file: { kind: 'other', type: 'directory' }, active: true, swappiness: undefined });
  t.throws(() => parseSwap(out('file x\ninactive\n')), /unexpected output/);
  t.equal(swapFact('/swapfile').key, 'host.swap:/swapfile');
});
