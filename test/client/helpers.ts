import { onTestFinished } from 'vitest';
import { consumer, type Consumer, type ConsumerOptions } from '../../src/client/consumer.js';
import type { Batch } from '../../src/client/records.js';
import type { Gateway } from '../../src/gateway.js';

/** A consumer of the gateway's /consume, closed when the test finishes. */
export function testConsumer(gateway: Gateway, options: Omit<ConsumerOptions, 'url'> & { url?: string }): Consumer {
  const c = consumer({ url: `ws://127.0.0.1:${gateway.ports.http}/consume`, ...options });
  onTestFinished(() => c.close().catch(() => {}));
  return c;
}

/** Appends `count` records ("r0", "r1", ...) with keys spread over devices; returns "topic/partition@offset" of each. */
export async function fill(gateway: Gateway, topic: string, partitions: number, count: number, from = 0): Promise<string[]> {
  if (!gateway.log.hasTopic(topic)) await gateway.log.createTopic(topic, { partitions });
  const results = await gateway.log.append(topic, Array.from({ length: count }, (_, i) => ({ key: `device-${(from + i) % 13}`, value: Buffer.from(`r${from + i}`) })));
  return results.map((r) => `${topic}/${r.partition}@${r.offset}`);
}

/** Pulls batches until `enough` holds for the records so far or `timeoutMs` passes (then fails). */
export async function pull(c: Consumer, enough: (ids: string[]) => boolean, timeoutMs = 10_000): Promise<{ ids: string[]; batches: Batch[] }> {
  const ids: string[] = [];
  const batches: Batch[] = [];
  const iterator = c[Symbol.asyncIterator]();
  const deadline = Date.now() + timeoutMs;
  while (!enough(ids)) {
    const left = deadline - Date.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms with ${ids.length} records: ${ids.slice(-5).join(' ')}`)), Math.max(0, left))));
    const next = await Promise.race([iterator.next(), timeout]).finally(() => clearTimeout(timer));
    if (next.done) break;
    batches.push(next.value);
    for (const r of next.value.records) ids.push(`${r.topic}/${r.partition}@${r.offset}`);
  }
  return { ids, batches };
}

export function sorted(ids: readonly string[]): string[] {
  return [...ids].sort();
}
