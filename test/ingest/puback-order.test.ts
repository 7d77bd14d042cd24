import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { assertSyncedBeforeEachAck, durabilityEvents, haveStrace, startTracedGateway } from '../helpers/strace.js';
import { tempDir } from '../helpers/temp-dir.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

// DESIGN.md, "Traps": a SIGKILL test cannot catch a missing flush, so prove the order of events:
// the fsync of the transaction holding a reading comes before the socket write of its PUBACK.
describe('PUBACK order', () => {
  (haveStrace ? it : it.skip)('fsyncs each reading before the socket write of its PUBACK', async () => {
    const { trace, started, stop } = await startTracedGateway(CLI, tempDir());
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${started.mqttPort}`, { clientId: 'device-0001', reconnectPeriod: 0 });
    // The first publish creates the topic; then each publish is its own transaction, one at a time.
    await client.publishAsync('devices/device-0001/temperature', 'warm-up', { qos: 1 });
    await client.publishAsync('devices/device-0001/temperature', 'second', { qos: 1 });
    for (let n = 0; n < 5; n++) await client.publishAsync('devices/device-0001/temperature', `reading ${n}`, { qos: 1 });
    await client.endAsync();
    await stop();
    // A PUBACK is 0x40 0x02 <message id>; aedes writes it as one writev of "@", "\2" and the id.
    const events = durabilityEvents(trace, /\b(write|writev|sendto|sendmsg)\(\d+, (\[\{iov_base=)?"@"?(, iov_len=1\}, \{iov_base=)?"?\\2/);
    // Skip the acks of the warm-up publish (which also created the topic) and the marker.
    let skipped = 0;
    const fromThird = events.filter((e) => (e === 'ack' ? ++skipped > 2 : skipped >= 2));
    expect(events.filter((e) => e === 'ack')).toHaveLength(7);
    expect(assertSyncedBeforeEachAck(fromThird)).toBe(5);
  });
});
