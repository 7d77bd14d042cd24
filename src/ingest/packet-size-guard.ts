import { Duplex } from 'node:stream';

/**
 * Follows MQTT packet boundaries in a byte stream by reading only fixed headers (MQTT 3.1.1
 * §2.2: one type byte, then the remaining length in 1 to 4 bytes of 7 bits), so an oversize
 * packet is seen from its first bytes. aedes's parser (mqtt-packet) has no size limit and would
 * buffer a packet of up to 256 MiB before handling it; this is what keeps memory bounded.
 */
export class MqttFrameScanner {
  /** Bytes of the current packet's body still to skip. */
  private skip = 0;
  /** Where in the fixed header we are: 0 the type byte, 1..4 remaining-length bytes. */
  private headerByte = 0;
  private length = 0;
  private multiplier = 1;

  constructor(private readonly maxPacketBytes: number) {}

  /**
   * Scans a chunk. Returns null while every packet fits, or a reason once one does not (a
   * remaining length over the limit, or a malformed length, MQTT-2.2.3: at most four bytes).
   */
  feed(chunk: Uint8Array): string | null {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const byte = chunk[i++]!;
      if (this.headerByte === 0) {
        this.headerByte = 1;
        this.length = 0;
        this.multiplier = 1;
        continue;
      }
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      if (byte & 0x80) {
        if (++this.headerByte > 4) return 'malformed remaining length (more than 4 bytes)';
        continue;
      }
      // Fixed header bytes plus body: what the parser would hold for this packet.
      if (this.length + this.headerByte + 1 > this.maxPacketBytes) {
        return `packet of ${this.length + this.headerByte + 1} bytes is over the limit of ${this.maxPacketBytes}`;
      }
      this.headerByte = 0;
      this.skip = this.length;
    }
    return null;
  }
}

/**
 * Wraps a client connection: passes bytes both ways untouched (with backpressure), and destroys
 * the connection at the first packet over `maxPacketBytes`, calling `onOversize` with the reason.
 */
export function guardPacketSize(conn: Duplex, maxPacketBytes: number, onOversize: (reason: string) => void): Duplex {
  const scanner = new MqttFrameScanner(maxPacketBytes);
  const guarded = new Duplex({
    read() {
      conn.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      conn.write(chunk, callback);
    },
    // aedes writes a packet in pieces between cork() and uncork() (mqtt-packet's writeToStream);
    // pass them on corked too, so a PUBACK stays one writev syscall as on a bare socket.
    writev(chunks, callback) {
      conn.cork();
      chunks.forEach(({ chunk }, i) => conn.write(chunk, i === chunks.length - 1 ? callback : undefined));
      conn.uncork();
    },
    final(callback) {
      conn.end(callback);
    },
    destroy(error, callback) {
      conn.destroy();
      callback(error);
    },
  });
  conn.on('data', (chunk: Buffer) => {
    const oversize = scanner.feed(chunk);
    if (oversize !== null) {
      onOversize(oversize);
      guarded.destroy();
      return;
    }
    if (!guarded.push(chunk)) conn.pause();
  });
  let ended = false;
  conn.on('end', () => {
    ended = true;
    guarded.push(null); // packets read before the peer's FIN are still handled
  });
  conn.on('close', () => {
    if (!ended) guarded.destroy();
  });
  conn.on('error', (error) => guarded.destroy(error));
  return guarded;
}
