import { createConnection, createServer, type Socket } from 'node:net';

// No vitest here: benchmarks use the proxy too (as bench/lib/brokers.ts uses loopback.ts).

/** A TCP proxy on 127.0.0.1 in front of a server, that tests use to cut and refuse the link. */
export interface TcpProxy {
  /** The proxy's own port: point clients here. */
  readonly port: number;
  /** Bytes forwarded client → server, and server → client, over all connections. */
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** Connections currently open through the proxy. */
  readonly connections: number;
  /** Destroys every connection now, both sides. New connections are accepted. */
  cut(): void;
  /** Cuts every connection and accepts-then-destroys new ones until {@link restore}. */
  refuse(): void;
  /** Accepts and forwards new connections again after {@link refuse}. */
  restore(): void;
  /**
   * Cuts every connection once `n` more bytes have gone client → server: the first `n` bytes are
   * forwarded, the rest of that chunk is not (to cut in the middle of a batch). One-shot.
   */
  cutAfterBytes(n: number): void;
  /** Stops listening and destroys every connection. Idempotent. */
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  server: Socket;
}

/** Starts a proxy on 127.0.0.1, port 0, forwarding to `targetHost:targetPort`. */
export async function createTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let refusing = false;
  let bytesUp = 0;
  let bytesDown = 0;
  /** Bytes client → server still allowed before the cut, or undefined when no cut is armed. */
  let upBudget: number | undefined;
  let cutting = false;
  let closed: Promise<void> | undefined;

  const destroyPair = (pair: Pair) => {
    pairs.delete(pair);
    pair.client.destroy();
    pair.server.destroy();
  };
  const cut = () => {
    for (const pair of [...pairs]) destroyPair(pair);
  };

  const server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: targetHost, port: targetPort });
    const pair: Pair = { client, server: upstream };
    pairs.add(pair);
    // Nothing is read from the client before the server side is connected, so nothing buffers here.
    client.pause();
    upstream.once('connect', () => client.resume());
    client.on('data', (chunk: Buffer) => {
      // Between reaching the budget and the cut, nothing more goes up.
      if (cutting) return;
      if (upBudget !== undefined && chunk.length >= upBudget) {
        const last = chunk.subarray(0, upBudget);
        upBudget = undefined;
        cutting = true;
        forward(client, upstream, last, (n) => (bytesUp += n));
        // Cut once the last allowed bytes are handed to the kernel, so the server gets exactly n.
        upstream.write(Buffer.alloc(0), () => {
          cutting = false;
          cut();
        });
        return;
      }
      if (upBudget !== undefined) upBudget -= chunk.length;
      forward(client, upstream, chunk, (n) => (bytesUp += n));
    });
    upstream.on('data', (chunk: Buffer) => forward(upstream, client, chunk, (n) => (bytesDown += n)));
    for (const socket of [client, upstream]) {
      socket.on('error', () => destroyPair(pair));
      socket.on('close', () => destroyPair(pair));
    }
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('tcp proxy: no port');

  return {
    port: address.port,
    get bytesUp() {
      return bytesUp;
    },
    get bytesDown() {
      return bytesDown;
    },
    get connections() {
      return pairs.size;
    },
    cut,
    refuse() {
      refusing = true;
      cut();
    },
    restore() {
      refusing = false;
    },
    cutAfterBytes(n: number) {
      if (!Number.isInteger(n) || n < 0) throw new Error(`tcp proxy: cutAfterBytes needs a byte count, got ${n}`);
      if (n === 0) {
        cut();
        return;
      }
      upBudget = n;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        refusing = true;
        cut();
        server.close(() => resolve());
      });
      return closed;
    },
  };
}

/** Writes `data` from `from` to `to` with backpressure: `from` pauses while `to` is full. */
function forward(from: Socket, to: Socket, data: Buffer, count: (n: number) => void): void {
  if (data.length === 0 || to.destroyed) return;
  count(data.length);
  if (!to.write(data)) {
    from.pause();
    to.once('drain', () => from.resume());
  }
}
