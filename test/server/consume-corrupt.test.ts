import { describe, expect, it } from 'vitest';
import type { EdgelogClientError } from '../../src/client/errors.js';
import { CommitLog } from '../../src/index.js';
import { testConsumer } from '../client/helpers.js';
import { startGateway } from '../helpers/gateway.js';
import { bytes, corruptStoredRecord } from '../helpers/log.js';
import { tempDir } from '../helpers/temp-dir.js';

const CORRUPT_OFFSET = 5;

describe('a consumer meeting a corrupt record', () => {
  it('gets the records before it, then the error naming the offset; the gateway stays up', async () => {
    const dir = tempDir();
    const log = await CommitLog.open({ dir, retentionSchedule: null });
    await log.createTopic('readings');
    await log.append('readings', Array.from({ length: 10 }, (_, i) => ({ value: bytes(`reading ${i}`) })));
    const topicId = log.topicShape('readings')!.id;
    await log.close();
    await corruptStoredRecord(dir, topicId, 0, CORRUPT_OFFSET);
    const gateway = await startGateway({}, { dataDir: dir });

    const c = testConsumer(gateway, { groupId: 'app', topics: ['readings'], offsetReset: 'earliest' });
    const offsets: number[] = [];
    let failure: EdgelogClientError | undefined;
    try {
      for await (const batch of c) offsets.push(...batch.records.map((r) => r.offset));
    } catch (error) {
      failure = error as EdgelogClientError;
    }
    expect(offsets).toEqual([0, 1, 2, 3, 4]);
    expect(failure?.code).toBe('CORRUPT_RECORD');
    expect(failure?.message).toMatch(/partition 0 at offset 5: checksum mismatch .*; this partition is not read further until the consumer seeks past offset 5$/);
    // Still up.
    const health = await fetch(`http://127.0.0.1:${gateway.ports.http}/healthz`);
    expect(health.status).toBe(200);
  });
});
