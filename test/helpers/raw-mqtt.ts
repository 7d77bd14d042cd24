import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { onTestFinished } from 'vitest';

/**
 * A hand-driven MQTT 3.1.1 connection for what a well-behaved client library will not send:
 * retransmissions with the same packet id, an empty client id with clean session 0.
 */
export class RawMqtt {
  private readonly received: Packet[] = [];
  private readonly waiters: { cmd: string; resolve: (p: Packet) => void }[] = [];
  private closedFlag = false;

  private constructor(private readonly socket: Socket) {
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (packet: Packet) => {
      const i = this.waiters.findIndex((w) => w.cmd === packet.cmd);
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(packet);
      else this.received.push(packet);
    });
    socket.on('data', (data) => parser.parse(data));
    socket.on('close', () => (this.closedFlag = true));
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<RawMqtt> {
    const socket = connect(port, '127.0.0.1');
    onTestFinished(() => void socket.destroy());
    await once(socket, 'connect');
    return new RawMqtt(socket);
  }

  send(packet: Packet): void {
    this.socket.write(mqttPacket.generate(packet));
  }

  /** Writes bytes as they are, for packets mqtt-packet refuses to generate. */
  sendBytes(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The next packet of this type (already received or still to come). */
  next(cmd: Packet['cmd'], timeoutMs = 5000): Promise<Packet> {
    const i = this.received.findIndex((p) => p.cmd === cmd);
    if (i >= 0) return Promise.resolve(this.received.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${cmd} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ cmd, resolve: (p) => (clearTimeout(timer), resolve(p)) });
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Resolves when the gateway has closed the connection. */
  async whenClosed(): Promise<void> {
    if (!this.closedFlag) await once(this.socket, 'close');
  }
}
