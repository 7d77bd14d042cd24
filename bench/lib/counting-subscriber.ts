import { createConnection } from 'node:net';
import type { Socket } from 'node:net';

/**
 * A bare MQTT 3.1.1 subscriber that only counts PUBLISH packets (and acknowledges QoS 1 ones), to
 * check that the reference broker delivered every reading it acknowledged: a broker that drops
 * messages must not look fast (DESIGN "Traps": Mosquitto 2.0.11 drops past max_queued_messages).
 * Hand-rolled rather than mqtt.js because mqtt.js costs ~19 us of CPU per message, which on two
 * cores would be taken from the broker under test; this parses fixed headers and skips the rest.
 */
export class CountingSubscriber {
  /** PUBLISH packets received. */
  received = 0;
  private pending: Buffer = Buffer.alloc(0);
  private closed = false;

  private constructor(private readonly socket: Socket) {}

  /** Connects to 127.0.0.1:`port` with a clean session and subscribes to `filter` at QoS 1. */
  static async connect(port: number, clientId: string, filter: string, timeoutMs = 10_000): Promise<CountingSubscriber> {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    const subscriber = new CountingSubscriber(socket);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`subscriber: no SUBACK from 127.0.0.1:${port} within ${timeoutMs} ms`)), timeoutMs);
      let step: 'connack' | 'suback' = 'connack';
      subscriber.onControl = (type, body) => {
        if (step === 'connack' && type === 2) {
          if (body[1] !== 0) return reject(new Error(`subscriber: CONNACK return code ${body[1]}`));
          step = 'suback';
          socket.write(subscribePacket(filter));
        } else if (step === 'suback' && type === 9) {
          clearTimeout(timer);
          if (body[2] === 0x80) return reject(new Error(`subscriber: SUBSCRIBE to ${filter} refused`));
          resolve();
        }
      };
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.on('data', (chunk: Buffer) => subscriber.onData(chunk));
      socket.write(connectPacket(clientId));
    });
    socket.on('error', () => {}); // a broker stopped under us ends the count; close() reports nothing more
    return subscriber;
  }

  private onControl: (type: number, body: Buffer) => void = () => {};

  private onData(chunk: Buffer): void {
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let at = 0;
    const acks: Buffer[] = [];
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
      const type = first >> 4;
      const body = buf.subarray(at + headerBytes, at + headerBytes + remaining);
      if (type === 3) {
        this.received++;
        const qos = (first >> 1) & 3;
        if (qos > 0) {
          // Variable header: topic (length-prefixed), then the packet id (MQTT-3.3.2).
          const topicBytes = body.readUInt16BE(0);
          acks.push(Buffer.from([0x40, 0x02, body[2 + topicBytes] as number, body[3 + topicBytes] as number]));
        }
      } else {
        this.onControl(type, body);
      }
      at += headerBytes + remaining;
    }
    this.pending = at === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(at));
    if (acks.length > 0 && !this.closed) this.socket.write(Buffer.concat(acks));
  }

  /** Sends DISCONNECT and closes the socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end(Buffer.from([0xe0, 0x00]));
  }
}

export function remainingLength(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

export function utf8(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

export function connectPacket(clientId: string): Buffer {
  // Protocol "MQTT" level 4 (3.1.1), flags: clean session; keep-alive 0 (off: the run is short and busy).
  const variable = Buffer.concat([utf8('MQTT'), Buffer.from([0x04, 0x02, 0x00, 0x00])]);
  const payload = utf8(clientId);
  return Buffer.concat([Buffer.from([0x10, ...remainingLength(variable.length + payload.length)]), variable, payload]);
}

export function subscribePacket(filter: string): Buffer {
  // MQTT-3.8.1-1: SUBSCRIBE's fixed header flags are 0010. Packet id 1, one filter at QoS 1.
  const body = Buffer.concat([Buffer.from([0x00, 0x01]), utf8(filter), Buffer.from([0x01])]);
  return Buffer.concat([Buffer.from([0x82, ...remainingLength(body.length)]), body]);
}

/**
 * Milliseconds from opening a connection to 127.0.0.1:`port` until its CONNACK, or null if none
 * came within `timeoutMs`: how long a device that boots now waits while the broker is busy.
 */
export async function connackMs(port: number, clientId: string, timeoutMs: number): Promise<number | null> {
  const startedMs = performance.now();
  const socket = createConnection({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  try {
    return await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      let got = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        // CONNACK: 0x20, remaining length 2, flags, return code (MQTT-3.2).
        if (got.length >= 4 && got[0] === 0x20) {
          clearTimeout(timer);
          resolve(got[3] === 0 ? performance.now() - startedMs : null);
        }
      });
      socket.once('error', () => {
        clearTimeout(timer);
        resolve(null);
      });
      socket.write(connectPacket(clientId));
    });
  } finally {
    socket.end(Buffer.from([0xe0, 0x00]));
    socket.destroy();
  }
}
