/**
 * Kafka's default partitioner: the 32-bit murmur2 hash of the key bytes with seed 0x9747b28c,
 * made positive with `& 0x7fffffff`, modulo the partition count
 * (org.apache.kafka.common.utils.Utils.murmur2 and BuiltInPartitioner.partitionForKey),
 * so a key lands on the same partition here as it would in Kafka.
 */
const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const R = 24;

/** Kafka's murmur2 of `data`, as a signed 32-bit integer (the value Java returns). */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = (data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24)) | 0;
    k = Math.imul(k, M);
    k ^= k >>> R;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }
  const tail = length & ~3;
  // Java's switch falls through from case 3 to case 1 here.
  const rest = length & 3;
  if (rest === 3) h ^= data[tail + 2]! << 16;
  if (rest >= 2) h ^= data[tail + 1]! << 8;
  if (rest >= 1) {
    h ^= data[tail]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition Kafka's default partitioner picks for a record with these key bytes. */
export function partitionForKey(keyBytes: Uint8Array, partitions: number): number {
  return (murmur2(keyBytes) & 0x7fffffff) % partitions;
}
