import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { assertSyncedBeforeEachAck, durabilityEvents, haveStrace, spawnTraced } from '../helpers/strace.js';
import { tempDir } from '../helpers/temp-dir.js';
import { IngestClient } from '../helpers/ws-ingest-client.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

// DESIGN.md, "Traps": a SIGKILL test cannot catch a missing flush, so prove the order of events:
// the fsync of the transaction holding a reading comes before the socket write of its ack frame.
describe('WebSocket ingest ack order', () => {
  (haveStrace ? it : it.skip)('fsyncs each reading before the socket write of its ack frame', async () => {
    const dir = tempDir();
    const trace = join(dir, 'trace');
    const strace = spawnTraced(trace, [process.execPath, '--import', 'tsx', CLI, 'start', '--data-dir', join(dir, 'data'), '--mqtt-port', '0', '--http-port', '0']);
    let gatewayPid: number | undefined;
    onTestFinished(() => {
      if (gatewayPid !== undefined) {
        try {
          process.kill(gatewayPid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });
    const started = await new Promise<{ httpPort: number; pid: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the gateway did not start under strace within 30 s')), 30_000);
      createInterface({ input: strace.stdout! }).on('line', (line) => {
        if (line.includes('edgelog gateway started')) {
          clearTimeout(timer);
          resolve(JSON.parse(line) as { httpPort: number; pid: number });
        }
      });
    });
    gatewayPid = started.pid;
    const { client, answer } = await IngestClient.authed(started.httpPort, 'device-0001');
    expect(answer.type).toBe('auth-ok');
    // The first publish creates the topic; then each publish is its own transaction, one at a time.
    for (const id of ['warm-up', 'second', 0, 1, 2, 3, 4]) {
      expect(await client.request({ type: 'publish', id, stream: 'temperature', payload: { id } })).toMatchObject({ type: 'ack', id });
    }
    client.ws.close();
    await client.closed;
    process.kill(started.pid, 'SIGTERM');
    await once(strace, 'exit');
    // An ack is a text frame whose JSON starts {"type":"ack"; ws writes header and payload in one writev.
    const events = durabilityEvents(trace, /\b(write|writev|sendto|sendmsg)\(\d+, .*\{\\"type\\":\\"ack\\"/);
    let skipped = 0;
    const fromThird = events.filter((e) => (e === 'ack' ? ++skipped > 2 : skipped >= 2));
    expect(events.filter((e) => e === 'ack')).toHaveLength(7);
    expect(assertSyncedBeforeEachAck(fromThird)).toBe(5);
  });
});
