import { describe, expect, test } from 'vitest';
import { CommitLog } from '../../src/index.js';
import { bytes, corruptStoredRecord } from '../helpers/log.js';
import { natsSkipReason, startNats } from '../helpers/nats-server.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';
import { bridgeStatus, startBridgedGateway } from './bridged-gateway.js';
import { receivedRecords } from './nats-central.js';

const skip = natsSkipReason();
const BRIDGE = 'central';
const RECORDS_PER_PARTITION = 10;
const CORRUPT_OFFSET = 5;

/** A log with two partitions of readings, then one stored record of partition 1 flipped behind the log's back (a rotting SD card). */
async function logWithCorruptRecord(dir: string): Promise<void> {
  const log = await CommitLog.open({ dir, retentionSchedule: null });
  await log.createTopic('readings', { partitions: 2 });
  for (const partition of [0, 1]) {
    await log.append('readings', Array.from({ length: RECORDS_PER_PARTITION }, (_, i) => ({ value: bytes(`p${partition} reading ${i}`), partition })));
  }
  const topicId = log.topicShape('readings')!.id;
  await log.close();
  await corruptStoredRecord(dir, topicId, 1, CORRUPT_OFFSET);
}

describe.skipIf(skip !== undefined)('a bridge meeting a corrupt record', () => {
  test('stalls that partition at the record, says so in its status, and goes on with the others; the gateway stays up', async () => {
    const dir = tempDir();
    await logWithCorruptRecord(dir);
    const nats = await startNats();
    const stream = `EDGELOG_CORRUPT_${process.pid}`;
    const gateway = await startBridgedGateway(
      [{ name: BRIDGE, type: 'nats', topics: ['readings'], reconnect: { initialDelayMs: 50, maxDelayMs: 500 }, nats: { servers: [nats.url], stream: { name: stream, create: true } } }],
      { dataDir: dir },
    );
    // Partition 0 whole, partition 1 up to the corrupt record.
    await waitFor(() => {
      const parts = bridgeStatus(gateway, BRIDGE).partitions;
      return parts.find((p) => p.partition === 0)?.acked === RECORDS_PER_PARTITION && parts.find((p) => p.partition === 1)?.acked === CORRUPT_OFFSET;
    }, 'partition 0 to replicate whole and partition 1 up to the corrupt record', 20_000);
    const status = bridgeStatus(gateway, BRIDGE);
    const stalled = status.partitions.find((p) => p.partition === 1)!;
    expect(stalled.stalled).toMatchObject({ offset: CORRUPT_OFFSET, code: 'CORRUPT_RECORD', message: expect.stringMatching(/corrupt record in topic 'readings' partition 1 at offset 5/) });
    expect(stalled.backlogRecords).toBe(RECORDS_PER_PARTITION - CORRUPT_OFFSET);
    expect(status.partitions.find((p) => p.partition === 0)!.stalled).toBeNull();
    expect(status.lastError).toMatchObject({ code: 'CORRUPT_RECORD' });
    const received = await receivedRecords([nats.url], stream);
    expect(received.filter((r) => r.partition === 1).map((r) => r.offset)).toEqual([0, 1, 2, 3, 4]);
    expect(received.filter((r) => r.partition === 0)).toHaveLength(RECORDS_PER_PARTITION);
    // Still serving: a new record in partition 0 goes upstream too.
    await gateway.log.append('readings', [{ value: bytes('after'), partition: 0 }]);
    await waitFor(() => bridgeStatus(gateway, BRIDGE).partitions.find((p) => p.partition === 0)?.acked === RECORDS_PER_PARTITION + 1, 'the new record to replicate');
  });
});
