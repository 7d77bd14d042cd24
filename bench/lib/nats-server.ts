import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acceptsConnections, freePort } from '../../test/helpers/loopback.js';
import { stopper } from './brokers.js';
import { cpuSeconds, memoryBytes } from './proc-stats.js';

// No vitest here (test/helpers/nats-server.ts registers its cleanup with vitest): benches stop it themselves.

/** Debian's nats-server (2.9.x: it acks before fsync, DESIGN "Traps"). */
export const NATS_BIN = '/usr/sbin/nats-server';
/** JetStream recovers its store before it listens; a fresh one listens at once. */
const START_TIMEOUT_MS = 15_000;
const OUTPUT_TAIL_CHARS = 4_000;

/** One JetStream-enabled nats-server, a child process of the benchmark, measured through /proc/PID. */
export interface NatsServerProcess {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  cpuSeconds(): number;
  memory(): { peakRssBytes: number; rssBytes: number };
  /** Stops it by PID and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
  /** Removes its store folder; call after stop. */
  cleanup(): void;
}

/** Starts a single nats-server with JetStream on a free port of 127.0.0.1, its store in a fresh temp folder. */
export async function startNatsServer(): Promise<NatsServerProcess> {
  if (!existsSync(NATS_BIN)) throw new Error(`${NATS_BIN} is missing: apt-get install -y nats-server`);
  const dir = mkdtempSync(join(tmpdir(), 'edgelog-bench-nats-'));
  const port = await freePort();
  const config = join(dir, 'nats.conf');
  writeFileSync(config, [`server_name: bench`, `listen: 127.0.0.1:${port}`, `jetstream { store_dir: ${JSON.stringify(join(dir, 'jetstream'))} }`, ''].join('\n'));
  const child = spawn(NATS_BIN, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
  });
  const pid = child.pid;
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (pid === undefined || !(await acceptsConnections(port))) {
    if (pid === undefined || child.exitCode !== null || Date.now() > deadline) {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`nats-server did not listen on ${port}: ${tail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid,
    cpuSeconds: () => cpuSeconds(pid),
    memory: () => memoryBytes(pid),
    stop: stopper(child),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
