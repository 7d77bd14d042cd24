import { describe, expect, it } from 'vitest';
import { murmur2, partitionForKey } from '../../src/log/murmur2.js';

describe('murmur2 (Kafka default partitioner)', () => {
  // Kafka's own expected values: clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2.
  const kafkaCases: Array<[Uint8Array, number]> = [
    [Buffer.from('21'), -973932308],
    [Buffer.from('foobar'), -790332482],
    [Buffer.from('a-little-bit-long-string'), -985981536],
    [Buffer.from('a-little-bit-longer-string'), -1486304829],
    [Buffer.from('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8'), -58897971],
    [Uint8Array.from([0x61, 0x62, 0x63]), 479470107],
  ];

  it.each(kafkaCases)('hashes %s as Kafka does', (key, expected) => {
    expect(murmur2(key)).toBe(expected);
  });

  it('picks the partition toPositive(murmur2) % n, as Kafka does', () => {
    for (const [key, hash] of kafkaCases) {
      for (const n of [1, 3, 8, 12]) expect(partitionForKey(key, n)).toBe((hash & 0x7fffffff) % n);
    }
    expect(partitionForKey(Buffer.from('foobar'), 12)).toBe(((-790332482 & 0x7fffffff) % 12));
  });
});
