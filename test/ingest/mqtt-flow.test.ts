import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import type { IPubrecPacket, IPubcompPacket } from 'mqtt-packet';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CommitLog } from '../../src/index.js';
import { startGateway, WARN, type LogLine } from '../helpers/gateway.js';
import { readAll } from '../helpers/log.js';
import { spawnTs } from '../helpers/process.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

async function connect(port: number, clientId: string): Promise<mqtt.MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId, reconnectPeriod: 0 });
  onTestFinished(() => client.endAsync(true));
  return client;
}

function values(log: CommitLog, topic: string): string[] {
  return readAll(log, topic).map((r) => r.value.toString());
}

describe('MQTT ingest flow', () => {
  it('appends a QoS 2 PUBLISH exactly once per packet id, also when it is retransmitted before PUBREL', async () => {
    const gateway = await startGateway();
    const raw = await RawMqtt.connect(gateway.ports.mqtt);
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, keepalive: 30, clean: true, clientId: 'q2' });
    await raw.next('connack');
    const publish = (payload: string, dup: boolean) =>
      raw.send({ cmd: 'publish', topic: 'devices/q2/level', payload: Buffer.from(payload), qos: 2, messageId: 7, dup, retain: false });
    publish('first', false);
    expect(((await raw.next('pubrec')) as IPubrecPacket).messageId).toBe(7);
    publish('first', true); // the PUBREC was lost, as far as the device knows
    expect(((await raw.next('pubrec')) as IPubrecPacket).messageId).toBe(7);
    raw.send({ cmd: 'pubrel', messageId: 7 });
    expect(((await raw.next('pubcomp')) as IPubcompPacket).messageId).toBe(7);
    // The handshake is over: packet id 7 may now carry a new message (MQTT-4.3.3).
    publish('second', false);
    await raw.next('pubrec');
    expect(values(gateway.log, 'level')).toEqual(['first', 'second']);

    const client = await connect(gateway.ports.mqtt, 'q2-lib');
    await client.publishAsync('devices/q2-lib/level', 'via mqtt.js', { qos: 2 });
    expect(values(gateway.log, 'level')).toEqual(['first', 'second', 'via mqtt.js']);
  });

  it('slows a client above maxReadingsPerSecond to its rate without refusing a reading, and others keep their pace', async () => {
    const gateway = await startGateway({ 'ingest.maxReadingsPerSecond': '20', 'ingest.burstReadings': '5' });
    const flooder = await connect(gateway.ports.mqtt, 'flooder');
    const flood = Array.from({ length: 25 }, (_, n) => flooder.publishAsync('devices/flooder/t', `f${n}`, { qos: 1 }));
    await waitFor(() => gateway.log.hasTopic('t') && gateway.log.read('t', 0, 0).records.length >= 5, 'the burst');
    const other = await connect(gateway.ports.mqtt, 'other');
    for (let n = 0; n < 5; n++) await other.publishAsync('devices/other/t', `o${n}`, { qos: 1 });
    await Promise.all(flood);
    const records = gateway.log.read('t', 0, 0, { maxRecords: 100 }).records;
    const flooded = records.filter((r) => r.key === 'flooder');
    expect(flooded.map((r) => r.value.toString())).toEqual(Array.from({ length: 25 }, (_, n) => `f${n}`));
    // 20 readings past the burst of 5, at 20/s: the last one cannot be appended before 1 s.
    expect(flooded.at(-1)!.timestamp - flooded[0]!.timestamp).toBeGreaterThanOrEqual(950);
    // The other client's readings, sent while the flooder waited, got in before the flood's end.
    const lastOther = records.findLast((r) => r.key === 'other')!;
    expect(lastOther.offset).toBeLessThan(flooded.at(-1)!.offset);
    expect(gateway.intake.stats().refused).toEqual({});
  });

  it('stops reading sockets when maxPendingBytes are in flight, and stores every reading in order', async () => {
    const limitBytes = 64 * 1024;
    const gateway = await startGateway({ 'ingest.maxPendingBytes': String(limitBytes) });
    const client = await connect(gateway.ports.mqtt, 'bulk');
    let maxPendingBytes = 0;
    const sampler = setInterval(() => (maxPendingBytes = Math.max(maxPendingBytes, gateway.intake.stats().pendingBytes)), 1);
    onTestFinished(() => clearInterval(sampler));
    const payload = (n: number) => `${n}:`.padEnd(8 * 1024, 'x');
    await Promise.all(Array.from({ length: 300 }, (_, n) => client.publishAsync('devices/bulk/blob', payload(n), { qos: 1 })));
    clearInterval(sampler);
    const stored = values(gateway.log, 'blob');
    expect(stored).toHaveLength(300);
    // Compared by index, not printed whole: a mismatch of 8 KiB strings would flood the report.
    expect(stored.findIndex((v, n) => v !== payload(n))).toBe(-1);
    // The bound was reached (the test exercised it) and never passed by more than one reading.
    expect(maxPendingBytes).toBeGreaterThan(limitBytes / 2);
    expect(maxPendingBytes).toBeLessThanOrEqual(limitBytes + 8 * 1024 + 256);
  });

  it('refuses readings while the log is full, says so once, and resumes by itself when space is freed', async () => {
    const logs: LogLine[] = [];
    const gateway = await startGateway({ 'log.maxLogBytes': String(64 * 1024) }, { logs });
    const client = await connect(gateway.ports.mqtt, 'filler');
    const payload = 'x'.repeat(4096);
    let acked = 0;
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    for (let n = 0; n < 100 && !client.disconnected && client.connected; n++) {
      const outcome = await Promise.race([client.publishAsync('devices/filler/fill', payload, { qos: 1 }).then(() => true), closed.then(() => false)]);
      if (!outcome) break;
      acked += 1;
    }
    expect(acked).toBeGreaterThan(5);
    expect(acked).toBeLessThan(100); // refused before the loop ran out: the log filled
    expect(values(gateway.log, 'fill')).toHaveLength(acked);

    const again = await connect(gateway.ports.mqtt, 'filler-2');
    const refusedAgain = new Promise<void>((resolve) => again.once('close', () => resolve()));
    again.publish('devices/filler-2/fill', payload, { qos: 1 });
    await refusedAgain;
    expect(logs.filter((l) => l.level === WARN && l.msg === 'the log is full: refusing readings until space is freed')).toHaveLength(1);
    expect(gateway.intake.stats()).toMatchObject({ logFull: true, refused: { LOG_FULL: 2 } });

    await gateway.log.deleteTopic('fill');
    const after = await connect(gateway.ports.mqtt, 'filler-3');
    await after.publishAsync('devices/filler-3/fill', 'fits again', { qos: 1 });
    expect(values(gateway.log, 'fill')).toEqual(['fits again']);
    expect(gateway.intake.stats().logFull).toBe(false);
    expect(logs.some((l) => l.msg === 'the log has space again: ingest resumed')).toBe(true);
  });

  it('closes a connection at the first bytes of a packet over the size limit, and keeps serving others', async () => {
    const logs: LogLine[] = [];
    const gateway = await startGateway({ 'log.topicDefaults.maxMessageBytes': '4096' }, { logs });
    const raw = await RawMqtt.connect(gateway.ports.mqtt);
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, keepalive: 30, clean: true, clientId: 'huge' });
    await raw.next('connack');
    // A PUBLISH announcing 200 MiB: only its fixed header is sent, the body never comes.
    raw.sendBytes(Buffer.from([0x32, 0x80, 0x80, 0x80, 0x64]));
    await raw.whenClosed();
    expect(logs.find((l) => l.msg === 'connection closed: MQTT packet too large')).toMatchObject({ level: WARN, reason: 'packet of 209715205 bytes is over the limit of 69632' });
    const client = await connect(gateway.ports.mqtt, 'small');
    await client.publishAsync('devices/small/s', 'fine', { qos: 1 });
    expect(values(gateway.log, 's')).toEqual(['fine']);
  });

  it('on SIGTERM stops listening, commits the readings in flight, acks them, and exits 0', async () => {
    const dir = tempDir();
    const gw = spawnTs(CLI, ['start', '--data-dir', dir, '--mqtt-port', '0', '--http-port', '0']);
    const { mqttPort } = JSON.parse(await gw.waitForLine(/edgelog gateway started/)) as { mqttPort: number };
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'steady', reconnectPeriod: 0 });
    onTestFinished(() => client.endAsync(true));
    let closed = false;
    client.on('close', () => (closed = true));
    const acked: string[] = [];
    let sent = 0;
    const publishing = (async () => {
      // Up to 200 QoS 1 publishes in flight until the gateway goes away (bounded at 100,000).
      while (!closed && sent < 100_000) {
        if (sent - acked.length >= 200) {
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        const value = `r${sent++}`;
        client.publishAsync('devices/steady/v', value, { qos: 1 }).then(() => void acked.push(value), () => {});
      }
    })();
    await waitFor(() => acked.length >= 500, '500 acked readings');
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    await publishing;
    expect(gw.output()).toMatch(/edgelog gateway stopped/);
    const log = await CommitLog.open({ dir, retentionSchedule: null });
    onTestFinished(() => log.close());
    // Exactly the acknowledged readings are stored, in order: the appends in flight at SIGTERM
    // committed and their PUBACKs went out before the connection closed.
    expect(acked.length).toBeLessThan(sent);
    expect(values(log, 'v')).toEqual(acked);
    expect(acked).toEqual(Array.from({ length: acked.length }, (_, n) => `r${n}`));
  });
});
