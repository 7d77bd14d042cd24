import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { assertSyncedBeforeEachAck, durabilityEvents, haveStrace, startTracedGateway } from '../helpers/strace.js';
import { tempDir } from '../helpers/temp-dir.js';
import { IngestClient } from '../helpers/ws-ingest-client.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

// DESIGN.md, "Traps": a SIGKILL test cannot catch a missing flush, so prove the order of events:
// the fsync of the transaction holding a reading comes before the socket write of its ack frame.
describe('WebSocket ingest ack order', () => {
  (haveStrace ? it : it.skip)('fsyncs each reading before the socket write of its ack frame', async () => {
    const { trace, started, stop } = await startTracedGateway(CLI, tempDir());
    const { client, answer } = await IngestClient.authed(started.httpPort, 'device-0001');
    expect(answer.type).toBe('auth-ok');
    // The first publish creates the topic; then each publish is its own transaction, one at a time.
    for (const id of ['warm-up', 'second', 0, 1, 2, 3, 4]) {
      expect(await client.request({ type: 'publish', id, stream: 'temperature', payload: { id } })).toMatchObject({ type: 'ack', id });
    }
    client.ws.close();
    await client.closed;
    await stop();
    // An ack is a text frame whose JSON starts {"type":"ack"; ws writes header and payload in one writev.
    const events = durabilityEvents(trace, /\b(write|writev|sendto|sendmsg)\(\d+, .*\{\\"type\\":\\"ack\\"/);
    let skipped = 0;
    const fromThird = events.filter((e) => (e === 'ack' ? ++skipped > 2 : skipped >= 2));
    expect(events.filter((e) => e === 'ack')).toHaveLength(7);
    expect(assertSyncedBeforeEachAck(fromThird)).toBe(5);
  });
});
