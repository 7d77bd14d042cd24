import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acceptsConnections, freePort, MOSQUITTO_BIN, mosquittoConfig } from '../../test/helpers/loopback.js';
import { cpuSeconds, memoryBytes } from './proc-stats.js';

export { freePort, MOSQUITTO_BIN } from '../../test/helpers/loopback.js';

const REPO_ROOT = join(import.meta.dirname, '..', '..');
const START_TIMEOUT_MS = 30_000;
/** SIGTERM first (a clean shutdown); SIGKILL by PID if it has not exited by then. */
const STOP_TIMEOUT_MS = 15_000;
const OUTPUT_TAIL_CHARS = 8_000;

/** A broker running as a child process of the benchmark, measured through /proc/PID. */
export interface BrokerProcess {
  readonly name: 'edgelog' | 'mosquitto';
  readonly url: string;
  readonly port: number;
  /** The gateway's HTTP port (/consume, /api); undefined for Mosquitto. */
  readonly httpPort: number | undefined;
  readonly pid: number;
  /** The commit log's folder (edgelog only); removed by {@link BrokerProcess.cleanup}. */
  readonly dataDir: string | undefined;
  cpuSeconds(): number;
  memory(): { peakRssBytes: number; rssBytes: number };
  /** Stops it by PID and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
  /** Removes its temporary folder; call after stop (and after checking the data). */
  cleanup(): void;
}

/** An idempotent stop of a child by its PID: SIGTERM, then SIGKILL if it has not exited in time. */
export function stopper(child: ChildProcess): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    })();
    return stopping;
  };
}

function tracked(name: BrokerProcess['name'], child: ChildProcess, ports: { mqtt: number; http?: number }, dir: string, dataDir: string | undefined, output: () => string): BrokerProcess {
  const port = ports.mqtt;
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name} did not start: ${output()}`);
  return {
    name,
    url: `mqtt://127.0.0.1:${port}`,
    port,
    httpPort: ports.http,
    pid,
    dataDir,
    cpuSeconds: () => cpuSeconds(pid),
    memory: () => memoryBytes(pid),
    stop: stopper(child),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

function withoutEdgelogVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('EDGELOG_')));
}

function keepTail(child: ChildProcess): () => string {
  let tail = '';
  const add = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => tail;
}

const built = new Set<string>();

function buildOnce(root: string): void {
  if (built.has(root)) return;
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
  built.add(root);
}

/**
 * Starts the gateway as `npm start` runs it, compiled (`tsc -p tsconfig.build.json` first, so the
 * build is of the source being measured; tsx's loader would add its own CPU and memory, and its
 * source maps make every Error costly), with a fresh data folder and `--mqtt-port 0`, and reads the
 * port from its `edgelog gateway started` log line. The default configuration (no credentials)
 * accepts anonymous clients on loopback, which is all the benchmark needs.
 * `sourceRoot` runs another checkout's gateway (to compare two versions with the same load).
 */
export async function startGateway(options: { cpuProfileDir?: string | undefined; sourceRoot?: string | undefined } = {}): Promise<BrokerProcess> {
  const root = options.sourceRoot ?? REPO_ROOT;
  const dir = mkdtempSync(join(tmpdir(), 'edgelog-bench-ingest-'));
  const dataDir = join(dir, 'data');
  buildOnce(root);
  const nodeArgs: string[] = [];
  if (options.cpuProfileDir !== undefined) nodeArgs.push('--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir);
  const child = spawn(process.execPath, [...nodeArgs, join(root, 'dist/src/cli/main.js'), 'start', '--data-dir', dataDir, '--mqtt-port', '0'], {
    cwd: root,
    // Our own settings only (an EDGELOG_* variable of the shell would change what is measured); an
    // HTTP port of 0 so the gateway's HTTP listener never meets a port in use (older versions ignore it).
    env: { ...withoutEdgelogVariables(process.env), EDGELOG_LOG_LEVEL: 'info', EDGELOG_HTTP_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = keepTail(child);
  let lines = '';
  try {
    const ports = await new Promise<{ mqtt: number; http: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the gateway did not log 'edgelog gateway started' within ${START_TIMEOUT_MS / 1000} s:\n${output()}`)), START_TIMEOUT_MS);
      const onData = (chunk: Buffer) => {
        // Bounded: only the first lines are searched, until the start line shows up.
        if (lines.length > 64_000) return;
        lines += chunk.toString();
        for (const line of lines.split('\n')) {
          if (!line.includes('edgelog gateway started')) continue;
          const { mqttPort, httpPort } = JSON.parse(line) as { mqttPort?: unknown; httpPort?: unknown };
          if (typeof mqttPort !== 'number' || typeof httpPort !== 'number') continue;
          clearTimeout(timer);
          child.stdout?.off('data', onData);
          resolve({ mqtt: mqttPort, http: httpPort });
        }
      };
      child.stdout?.on('data', onData);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the gateway exited (${code ?? signal}) before it started:\n${output()}`));
      });
    });
    return tracked('edgelog', child, ports, dir, dataDir, output);
  } catch (error) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Starts Debian's Mosquitto on a free port of 127.0.0.1 with a generated config: persistence off
 * (its normal mode, and it never fsyncs before a PUBACK anyway), and max_queued_messages very high
 * because 2.0.11 silently drops QoS 1 messages to a slow subscriber past it (DESIGN "Traps").
 */
export async function startMosquitto(extraConfig: readonly string[] = []): Promise<BrokerProcess> {
  if (!existsSync(MOSQUITTO_BIN)) throw new Error(`${MOSQUITTO_BIN} is missing: apt-get install -y mosquitto`);
  const dir = mkdtempSync(join(tmpdir(), 'edgelog-bench-mosquitto-'));
  const port = await freePort();
  const config = join(dir, 'mosquitto.conf');
  writeFileSync(config, mosquittoConfig(port, ['persistence false', ...extraConfig]));
  const child = spawn(MOSQUITTO_BIN, ['-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = keepTail(child);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await acceptsConnections(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`mosquitto did not listen on ${port}: ${output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return tracked('mosquitto', child, { mqtt: port }, dir, undefined, output);
}
