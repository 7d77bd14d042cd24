import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { Aedes } from 'aedes';
import { onTestFinished } from 'vitest';

export interface ReceivedMessage {
  readonly topic: string;
  readonly payload: Buffer;
}

export interface AedesBroker {
  readonly port: number;
  readonly url: string;
  /** Every message published on devices/#, in arrival order, seen by an in-process subscriber that never disconnects. */
  readonly received: ReceivedMessage[];
  /** Stops listening and drops every client connection, as a broker that went away. */
  stopListening(): Promise<void>;
  /** Listens again on the same port. */
  startListening(): Promise<void>;
}

/** An in-process aedes broker on 127.0.0.1 (port 0), closed when the test finishes. */
export async function startAedes(): Promise<AedesBroker> {
  const broker = await Aedes.createBroker();
  const received: ReceivedMessage[] = [];
  await new Promise<void>((resolve) => {
    broker.subscribe(
      'devices/#',
      (packet, done) => {
        received.push({ topic: packet.topic, payload: Buffer.from(packet.payload) });
        done();
      },
      resolve,
    );
  });
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = async (): Promise<void> => {
    const s = createServer((socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      broker.handle(socket);
    });
    await new Promise<void>((resolve, reject) => s.once('error', reject).listen(port, '127.0.0.1', resolve));
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    port = address.port;
    server = s;
  };
  const stopListening = async (): Promise<void> => {
    const s = server;
    server = undefined;
    if (s === undefined) return;
    const closed = new Promise((resolve) => s.close(resolve));
    for (const socket of sockets) socket.destroy();
    await closed;
  };
  await listen();
  onTestFinished(async () => {
    await stopListening();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  });
  return {
    get port() {
      return port;
    },
    get url() {
      return `mqtt://127.0.0.1:${port}`;
    },
    received,
    stopListening,
    startListening: listen,
  };
}
