import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { acceptsConnections, freePort, MOSQUITTO_BIN, mosquittoConfig } from './loopback.js';
import { tempDir } from './temp-dir.js';

export { freePort } from './loopback.js';

export { MOSQUITTO_BIN } from './loopback.js';

/**
 * Why Mosquitto tests cannot run here, or undefined when they can. In CI (CI=true) a missing
 * binary is a failure, not a skip: .ci/run installs Debian's mosquitto package.
 */
export function mosquittoSkipReason(): string | undefined {
  if (existsSync(MOSQUITTO_BIN)) return undefined;
  if (process.env['CI'] === 'true') throw new Error(`${MOSQUITTO_BIN} is missing in CI: .ci/run must install the mosquitto package`);
  return `${MOSQUITTO_BIN} is not installed (apt-get install mosquitto); skipping the Mosquitto tests`;
}

export interface MosquittoBroker {
  readonly port: number;
  readonly url: string;
  readonly pid: number | undefined;
  /** Stops the broker by its PID (SIGTERM, so it saves its persistence file) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again with the same config, port and persistence. */
  start(): Promise<void>;
}

/**
 * Starts Debian's Mosquitto on a free port of 127.0.0.1 with a temporary config and persistence
 * folder; stopped by PID when the test finishes. max_queued_messages is unlimited because 2.0.11
 * silently drops QoS 1 messages to a slow subscriber past it (DESIGN "Traps"). `config` lines are
 * appended (they apply to the one listener: TLS files, password_file, allow_anonymous false).
 */
export async function startMosquitto(options: { config?: readonly string[] } = {}): Promise<MosquittoBroker> {
  const dir = tempDir('edgelog-mosquitto-');
  const port = await freePort();
  const config = join(dir, 'mosquitto.conf');
  writeFileSync(config, mosquittoConfig(port, ['persistence true', `persistence_location ${dir}/`, ...(options.config ?? [])]));
  let child: ChildProcess | undefined;
  let stderr = '';
  const broker: MosquittoBroker = {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    get pid() {
      return child?.pid;
    },
    async start() {
      if (child !== undefined) return;
      const proc = spawn(MOSQUITTO_BIN, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      proc.stderr?.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-4000);
      });
      child = proc;
      const deadline = Date.now() + 10_000;
      while (!(await acceptsConnections(port))) {
        if (proc.exitCode !== null) throw new Error(`mosquitto exited with ${proc.exitCode}: ${stderr}`);
        if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port} within 10 s: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
    async stop() {
      const proc = child;
      if (proc === undefined) return;
      child = undefined;
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  onTestFinished(() => broker.stop());
  await broker.start();
  return broker;
}
