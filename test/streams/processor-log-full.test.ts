import { pino } from 'pino';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { parseStreamsConfig } from '../../src/streams/config.js';
import { StreamProcessor } from '../../src/streams/processor.js';
import { openTestLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

describe('a stream processor on a full log', () => {
  it('waits it out with one warning, not an error line per retry, and goes on once there is room', async () => {
    // Room for the input and nothing more: the processor's output is refused with LOG_FULL.
    const log = await openTestLog({ maxLogBytes: 4000 });
    await log.createTopic('climate');
    const input = Array.from({ length: 20 }, (_, i) => ({ key: 'env-1', value: Buffer.from(JSON.stringify({ seq: i, pad: 'x'.repeat(120) })) }));
    await log.append('climate', input);
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
    const [config] = parseStreamsConfig([{ name: 'copy', from: 'climate', to: 'copy', pipeline: [{ filter: { field: 'seq', op: '>=', value: 0 } }] }]);
    let refusedOutputs = 0;
    const append = log.append.bind(log);
    vi.spyOn(log, 'append').mockImplementation((topic, records, options) => {
      const appended = append(topic, records, options);
      if (topic === 'copy') appended.catch(() => void refusedOutputs++);
      return appended;
    });
    const p = new StreamProcessor({ log, logger, config: config! });
    p.start();
    onTestFinished(() => p.close());
    const failed = () => lines.filter((l) => l['msg'] === 'stream processor batch failed: it resumes from its last commit');
    // Retries go after 100, 200, 400 ms: four refused batches while the log stays full.
    await waitFor(() => refusedOutputs >= 4, 'four refused output batches', 10_000);
    expect(failed().map((l) => [l['level'], (l['err'] as { code: string }).code])).toEqual([[40, 'LOG_FULL']]);
    await log.deleteTopic('climate');
    await waitFor(() => lines.some((l) => l['msg'] === 'stream processor resumed'), 'the processor to resume once there is room', 15_000);
  });
});
