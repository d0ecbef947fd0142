// Which interface addresses keep a lab off 10.200.N.0/24: any whose network shares an address with it.
import t from 'tap';
import { overlapsLabSubnet } from '../../../lab/lab.ts';

const on = (cidr: string) => {
  const [address = '', prefixlen = ''] = cidr.split('/');
  return { ifname: 'eth0', address, prefixlen: Number(prefixlen) };
};

t.test('an address blocks lab N exactly when its network and 10.200.N.0/24 overlap', async (t) => {
  const cases: Array<[cidr: string, index: number, overlaps: boolean]> = [
    ['10.200.3.1/24', 3, true], // another lab's bridge
    ['10.200.3.77/32', 3, true], // one address inside
    ['10.200.3.200/28', 3, true], // a smaller network inside
    ['10.200.4.1/24', 3, false], // the next lab
    ['10.200.2.1/23', 3, true], // 10.200.2.0-10.200.3.255
    ['10.200.0.1/23', 3, false], // 10.200.0.0-10.200.1.255
    ['10.0.0.5/8', 254, true], // a wide private network covers every lab
    ['10.201.0.1/16', 3, false],
    ['192.0.2.2/24', 0, false],
    ['127.0.0.1/8', 0, false],
    ['0.0.0.0/0', 7, true],
  ];
  for (const [cidr, index, overlaps] of cases) t.equal(overlapsLabSubnet(on(cidr), index), overlaps, `${cidr} and 10.200.${index}.0/24`);
});
