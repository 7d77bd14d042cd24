import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { connectPacket, remainingLength, subscribePacket, utf8 } from './counting-subscriber.js';

/**
 * Hand-rolled MQTT 3.1.1 clients for the bridge benchmark (bench/bridge.ts): a QoS 1 subscriber
 * that counts messages and the records they hold, and a pipelined QoS 1 publisher. Hand-rolled
 * rather than mqtt.js because mqtt.js costs ~19 us of CPU per message (DESIGN "Traps"), which on
 * two cores would be taken from the bridges being measured; these parse fixed headers and little
 * more. Like counting-subscriber.ts, which counts packets only: a batched bridge message holds
 * many records, and the drain is measured in records.
 */

const CONNECT_TIMEOUT_MS = 10_000;
/** MQTT-2.3.1-1: packet identifiers are non-zero 16-bit numbers. */
const PACKET_ID_MAX = 65_535;
const NEWLINE = 0x0a;

const PUBLISH = 3;
const PUBACK = 4;
const CONNACK = 2;
const SUBACK = 9;

/** Splits a byte stream into MQTT packets (MQTT-2.2: fixed header, remaining length, body). */
class PacketReader {
  private pending: Buffer = Buffer.alloc(0);

  /** Calls `onPacket` for every whole packet in the bytes received so far; keeps the tail. */
  push(chunk: Buffer, onPacket: (type: number, flags: number, body: Buffer) => void): void {
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let at = 0;
    // Bounded by the bytes received: every turn consumes one whole packet or stops.
    while (buf.length - at >= 2) {
      let remaining = 0;
      let multiplier = 1;
      let headerBytes = 1;
      let complete = false;
      for (let i = 0; i < 4 && at + headerBytes < buf.length; i++) {
        const byte = buf[at + headerBytes] as number;
        headerBytes++;
        remaining += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || buf.length - at < headerBytes + remaining) break;
      const first = buf[at] as number;
      onPacket(first >> 4, first & 0x0f, buf.subarray(at + headerBytes, at + headerBytes + remaining));
      at += headerBytes + remaining;
    }
    this.pending = at === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(at));
  }
}

function publishPacket(topic: Buffer, packetId: number, payload: Buffer): Buffer {
  // QoS 1 (flags 0010): topic, packet id, payload (MQTT-3.3).
  const head = Buffer.from([0x32, ...remainingLength(topic.length + 2 + payload.length)]);
  const id = Buffer.from([packetId >> 8, packetId & 0xff]);
  return Buffer.concat([head, topic, id, payload]);
}

/** Opens a connection and resolves after CONNACK (and SUBACK when `filter` is given). */
async function open(port: number, clientId: string, reader: PacketReader, filter: string | undefined): Promise<{ socket: Socket; route: (handler: (type: number, flags: number, body: Buffer) => void) => void }> {
  const socket = createConnection({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  let handler: (type: number, flags: number, body: Buffer) => void = () => {};
  socket.on('data', (chunk: Buffer) => reader.push(chunk, (type, flags, body) => handler(type, flags, body)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${clientId}: no ${filter === undefined ? 'CONNACK' : 'SUBACK'} from 127.0.0.1:${port} within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    handler = (type, _flags, body) => {
      if (type === CONNACK) {
        if (body[1] !== 0) return fail(new Error(`${clientId}: CONNACK return code ${body[1]}`));
        if (filter === undefined) {
          clearTimeout(timer);
          return resolve();
        }
        socket.write(subscribePacket(filter));
      } else if (type === SUBACK) {
        if (body[2] === 0x80) return fail(new Error(`${clientId}: SUBSCRIBE to ${filter} refused`));
        clearTimeout(timer);
        resolve();
      }
    };
    socket.once('error', fail);
    socket.write(connectPacket(clientId));
  });
  socket.on('error', () => {}); // a broker stopped under us ends the count; the caller's bounded wait reports it
  return { socket, route: (h) => (handler = h) };
}

/**
 * A QoS 1 subscriber (clean session) that acknowledges and counts what it receives: messages, and
 * records, which are the messages themselves or, with `ndjson`, the lines of each payload (the
 * bridges' batch format, one record per line, bridges/record-identity.ts).
 */
export class RecordCounter {
  messages = 0;
  records = 0;
  /** performance.now() when the first message arrived; undefined before. */
  firstAtMs: number | undefined;
  /** performance.now() when `records` first reached the target of {@link expect}. */
  reachedAtMs: number | undefined;
  private target = Number.POSITIVE_INFINITY;
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    private readonly ndjson: boolean,
  ) {}

  /** Connects to 127.0.0.1:`port` and subscribes to `filter` at QoS 1. */
  static async connect(port: number, clientId: string, filter: string, options: { ndjson: boolean }): Promise<RecordCounter> {
    const reader = new PacketReader();
    const { socket, route } = await open(port, clientId, reader, filter);
    const counter = new RecordCounter(socket, options.ndjson);
    route((type, flags, body) => counter.onPacket(type, flags, body));
    return counter;
  }

  /** Notes the moment `records` reaches `target` (in reachedAtMs), to the packet. */
  expect(target: number): void {
    this.target = target;
    this.reachedAtMs = this.records >= target ? performance.now() : undefined;
  }

  private acks: Buffer[] = [];
  private flushing = false;

  private onPacket(type: number, flags: number, body: Buffer): void {
    if (type !== PUBLISH) return;
    this.firstAtMs ??= performance.now();
    this.messages++;
    const topicBytes = body.readUInt16BE(0);
    const qos = (flags >> 1) & 3;
    // Variable header: topic (length-prefixed), then the packet id when QoS > 0 (MQTT-3.3.2).
    const payloadAt = 2 + topicBytes + (qos > 0 ? 2 : 0);
    this.records += this.ndjson ? countByte(body, NEWLINE, payloadAt) : 1;
    if (this.reachedAtMs === undefined && this.records >= this.target) this.reachedAtMs = performance.now();
    if (qos > 0) {
      this.acks.push(Buffer.from([0x40, 0x02, body[2 + topicBytes] as number, body[3 + topicBytes] as number]));
      // One write per chunk of packets, not per packet.
      if (!this.flushing) {
        this.flushing = true;
        queueMicrotask(() => {
          this.flushing = false;
          const acks = this.acks;
          this.acks = [];
          if (!this.closed) this.socket.write(Buffer.concat(acks));
        });
      }
    }
  }

  /** Sends DISCONNECT and closes the socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end(Buffer.from([0xe0, 0x00]));
  }
}

function countByte(buf: Buffer, byte: number, from: number): number {
  let n = 0;
  // Bounded by the buffer: indexOf moves forward every turn.
  for (let at = buf.indexOf(byte, from); at !== -1; at = buf.indexOf(byte, at + 1)) n++;
  return n;
}

/** A QoS 1 publisher (clean session) that keeps a window of publishes in flight. */
export class QosOnePublisher {
  acknowledged = 0;
  private onAcks: () => void = () => {};
  private closed = false;

  private constructor(private readonly socket: Socket) {}

  static async connect(port: number, clientId: string): Promise<QosOnePublisher> {
    const reader = new PacketReader();
    const { socket, route } = await open(port, clientId, reader, undefined);
    const publisher = new QosOnePublisher(socket);
    let counted = false;
    route((type) => {
      if (type !== PUBACK) return;
      publisher.acknowledged++;
      // Refill once per chunk of PUBACKs.
      if (!counted) {
        counted = true;
        queueMicrotask(() => {
          counted = false;
          publisher.onAcks();
        });
      }
    });
    return publisher;
  }

  /**
   * Publishes `count` messages made by `message(i)`, at most `window` without PUBACK, and resolves
   * once all are acknowledged; rejects when the connection closes or `timeoutMs` passes first.
   */
  publishAll(count: number, message: (i: number) => { topic: string; payload: Buffer }, window: number, timeoutMs: number): Promise<void> {
    if (window < 1 || window >= PACKET_ID_MAX) throw new Error(`publisher: window must be 1 to ${PACKET_ID_MAX - 1}, got ${window}`);
    const base = this.acknowledged;
    let sent = 0;
    return new Promise<void>((resolve, reject) => {
      const finish = (error?: Error) => {
        clearTimeout(timer);
        this.socket.off('close', onClose);
        this.onAcks = () => {};
        if (error) reject(error);
        else resolve();
      };
      const timer = setTimeout(() => finish(new Error(`publisher: ${this.acknowledged - base} of ${count} PUBACKs within ${timeoutMs} ms`)), timeoutMs);
      const onClose = () => finish(new Error(`publisher: the broker closed the connection after ${this.acknowledged - base} of ${count} PUBACKs`));
      this.socket.once('close', onClose);
      const fill = () => {
        const acked = this.acknowledged - base;
        if (acked >= count) return finish();
        const parts: Buffer[] = [];
        // Bounded by the window: ids in flight never repeat, since the window is below the id space.
        while (sent < count && sent - acked < window) {
          const { topic, payload } = message(sent);
          parts.push(publishPacket(utf8(topic), (sent % PACKET_ID_MAX) + 1, payload));
          sent++;
        }
        if (parts.length > 0) this.socket.write(Buffer.concat(parts));
      };
      this.onAcks = fill;
      fill();
    });
  }

  /** Sends DISCONNECT and closes the socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end(Buffer.from([0xe0, 0x00]));
  }
}
