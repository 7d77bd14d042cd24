import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import type { FleetReport } from '../../firmware-sim/report.js';
import { stopper } from './brokers.js';
import { memoryBytes } from './proc-stats.js';

/**
 * Child processes of the footprint benchmark (bench/footprint.ts), each pinned to one core with
 * taskset(1) (which execs its command, so the PID is the command's own) and, for Node, run under
 * a heap cap: the compiled gateway, firmware-sim, and the start-up references.
 */

const REPO_ROOT = join(import.meta.dirname, '..', '..');
/** A gateway opening a 10-million-record log is still expected within seconds ("no scan on start"). */
const READY_TIMEOUT_MS = 60_000;
/** /healthz is polled this often after the start line, until it answers 200 (or 404: no such route yet). */
const HEALTHZ_POLL_MS = 5;
const HEALTHZ_TIMEOUT_MS = 10_000;
const HTTP_REQUEST_TIMEOUT_MS = 2_000;
/** firmware-sim drains its buffers for up to 10 s after its duration (its default), then disconnects. */
const FLEET_EXIT_SLACK_MS = 30_000;
/** The start-up references (raw LMDB open, bare Node) get this long to print their line. */
const REFERENCE_TIMEOUT_MS = 60_000;
/** After its line a reference exits by itself (closing LMDB); past this it is stopped by PID. */
const REFERENCE_EXIT_MS = 5_000;
const OUTPUT_TAIL_CHARS = 8_000;
/** Only the first lines of a child's stdout are searched for its ready line. */
const READY_SEARCH_CHARS = 64_000;

/** Every child the benchmark started, so that an error or Ctrl-C stops them all by PID. */
export class ChildSet {
  private readonly live = new Set<ChildProcess>();
  private readonly stops = new Set<() => Promise<void>>();

  /** Spawns `command args` pinned to `core`; stdout and stderr are piped and always drained. */
  spawnPinned(core: number, command: string, args: readonly string[], env: NodeJS.ProcessEnv = cleanEnv()): Pinned {
    const child = spawn('taskset', ['-c', String(core), command, ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.adopt(child);
    let tail = '';
    const add = (chunk: Buffer) => {
      tail = (tail + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
    };
    child.stdout?.on('data', add);
    child.stderr?.on('data', add);
    return { child, output: () => tail, stop: stopper(child), alive: () => child.exitCode === null && child.signalCode === null };
  }

  /** Tracks a child started elsewhere (the prefill's fork) so that {@link stopAll} stops it too. */
  adopt(child: ChildProcess): void {
    this.live.add(child);
    child.once('exit', () => this.live.delete(child));
  }

  /** Tracks a process started by another helper (Mosquitto, by brokers.ts) through its own idempotent stop. */
  adoptStop(stop: () => Promise<void>): void {
    this.stops.add(stop);
  }

  /** Stops every child still running: SIGTERM, then SIGKILL by PID (bench/lib/brokers.ts's stopper). */
  async stopAll(): Promise<void> {
    await Promise.all([...[...this.live].map((child) => stopper(child)()), ...[...this.stops].map((stop) => stop())]);
  }
}

/** A pinned child and how to stop it. */
export interface Pinned {
  readonly child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
  alive(): boolean;
}

/** Our own settings only: an EDGELOG_* variable or NODE_OPTIONS of the shell would change what is measured. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('EDGELOG_') && name !== 'NODE_OPTIONS'));
  return { ...env, ...extra };
}

/** Pins a running process and all its threads to `core` (Mosquitto, started by brokers.ts). */
export function pinProcess(pid: number, core: number): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { stdio: 'ignore' });
}

/** Resolves with the first stdout line that `match` accepts and ms since `spawnedMs`; rejects on exit or timeout. */
function waitForLine<T>(pinned: Pinned, spawnedMs: number, timeoutMs: number, what: string, match: (line: string) => T | undefined): Promise<{ value: T; ms: number }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const finish = (error: Error | undefined, result?: { value: T; ms: number }) => {
      clearTimeout(timer);
      pinned.child.stdout?.off('data', onData);
      pinned.child.off('exit', onExit);
      if (error) reject(error);
      else resolve(result!);
    };
    const timer = setTimeout(() => finish(new Error(`${what} within ${timeoutMs / 1000} s:\n${pinned.output()}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      const ms = performance.now() - spawnedMs;
      if (text.length > READY_SEARCH_CHARS) return;
      text += chunk.toString();
      const lines = text.split('\n');
      text = lines.pop() ?? '';
      for (const line of lines) {
        const value = match(line);
        if (value !== undefined) return finish(undefined, { value, ms });
      }
    };
    const onExit = (code: number | null, signal: string | null) => finish(new Error(`${what}: it exited (${code ?? signal}) first:\n${pinned.output()}`));
    pinned.child.stdout?.on('data', onData);
    pinned.child.once('exit', onExit);
  });
}

/** A gateway started by {@link startPinnedGateway}, with the figures of its start. */
export interface PinnedGateway extends Pinned {
  readonly pid: number;
  readonly mqttPort: number;
  readonly httpPort: number;
  /** From spawn to its 'edgelog gateway started' line. */
  readonly startedLineMs: number;
  /** From spawn to the first 200 from GET /healthz; null when the route does not exist (404). */
  readonly healthzMs: number | null;
  /** VmRSS when the start line arrived. */
  readonly rssAtStartBytes: number;
}

/**
 * Starts the compiled gateway as a user would (`node bin/edgelog.js start`), pinned and with a
 * heap cap, on free ports, and reads its ports from the 'edgelog gateway started' line.
 */
export async function startPinnedGateway(children: ChildSet, options: { core: number; heapMb: number; dataDir: string }): Promise<PinnedGateway> {
  const spawnedMs = performance.now();
  const args = [`--max-old-space-size=${options.heapMb}`, join(REPO_ROOT, 'bin/edgelog.js'), 'start', '--data-dir', options.dataDir, '--mqtt-port', '0', '--http-port', '0'];
  const pinned = children.spawnPinned(options.core, process.execPath, args, cleanEnv({ EDGELOG_LOG_LEVEL: 'info' }));
  try {
    const pid = pinned.child.pid;
    if (pid === undefined) throw new Error(`the gateway did not start: ${pinned.output()}`);
    const started = await waitForLine(pinned, spawnedMs, READY_TIMEOUT_MS, "the gateway did not log 'edgelog gateway started'", (line) => {
      if (!line.includes('edgelog gateway started')) return undefined;
      const { mqttPort, httpPort } = JSON.parse(line) as { mqttPort?: unknown; httpPort?: unknown };
      return typeof mqttPort === 'number' && typeof httpPort === 'number' ? { mqttPort, httpPort, rss: memoryBytes(pid).rssBytes } : undefined;
    });
    const healthzMs = await timeHealthz(started.value.httpPort, spawnedMs);
    return { ...pinned, pid, mqttPort: started.value.mqttPort, httpPort: started.value.httpPort, startedLineMs: started.ms, healthzMs, rssAtStartBytes: started.value.rss };
  } catch (error) {
    await pinned.stop();
    throw error;
  }
}

/** Polls GET /healthz until 200: ms since spawn, or null once it answers 404 (the route is not there). */
async function timeHealthz(port: number, spawnedMs: number): Promise<number | null> {
  const deadline = performance.now() + HEALTHZ_TIMEOUT_MS;
  // Bounded by the deadline.
  while (performance.now() < deadline) {
    const status = await httpStatus(port, '/healthz');
    if (status === 200) return performance.now() - spawnedMs;
    if (status === 404) return null;
    await new Promise((resolve) => setTimeout(resolve, HEALTHZ_POLL_MS));
  }
  throw new Error(`GET /healthz did not answer 200 within ${HEALTHZ_TIMEOUT_MS / 1000} s of the start line`);
}

function httpStatus(port: number, path: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path, timeout: HTTP_REQUEST_TIMEOUT_MS }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(undefined));
  });
}

/** What one firmware-sim run reported (its --report JSON), in the figures the benchmark uses. */
export interface FleetFigures {
  readonly devices: number;
  readonly durationS: number;
  readonly generated: number;
  readonly acknowledged: number;
  readonly ackedPerSec: number;
  readonly dropped: number;
  readonly connectionErrors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/**
 * Runs `firmware-sim --devices N --rate 1 --qos 1 --duration S` pinned to `core` against
 * 127.0.0.1:`port` (compiled: bin/firmware-sim.js), and returns its pid and a promise of its report.
 */
export function startFleet(children: ChildSet, options: { core: number; port: number; devices: number; durationS: number; seed: number; reportFile: string }): { pid: number; done: Promise<FleetFigures> } {
  const args = [
    join(REPO_ROOT, 'bin/firmware-sim.js'),
    '--gateway', `mqtt://127.0.0.1:${options.port}`,
    '--devices', String(options.devices),
    '--rate', '1',
    '--qos', '1',
    '--duration', String(options.durationS),
    '--seed', String(options.seed),
    '--report', options.reportFile,
    '--log-level', 'error',
  ];
  const pinned = children.spawnPinned(options.core, process.execPath, args);
  const pid = pinned.child.pid;
  if (pid === undefined) throw new Error(`firmware-sim did not start: ${pinned.output()}`);
  const done = new Promise<FleetFigures>((resolve, reject) => {
    const timer = setTimeout(() => {
      void pinned.stop();
      reject(new Error(`firmware-sim did not finish within ${options.durationS} s + ${FLEET_EXIT_SLACK_MS / 1000} s:\n${pinned.output()}`));
    }, options.durationS * 1000 + FLEET_EXIT_SLACK_MS);
    pinned.child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`firmware-sim exited (${code ?? signal}):\n${pinned.output()}`));
      try {
        const report = JSON.parse(readFileSync(options.reportFile, 'utf8')) as FleetReport;
        const r = report.readings;
        resolve({
          devices: report.settings.devices,
          durationS: report.settings.durationS,
          generated: r.generated,
          acknowledged: r.acknowledged,
          // Every device samples round(duration x rate) readings, so this is the rate over the run.
          ackedPerSec: r.acknowledged / report.settings.durationS,
          dropped: r.dropped,
          connectionErrors: report.connections.errors,
          p50Ms: report.latency.p50,
          p99Ms: report.latency.p99,
        });
      } catch (error) {
        reject(error as Error);
      }
    });
  });
  return { pid, done };
}

/** A start-up reference: ms from spawn to its ready line, and its RSS then. */
export interface ReferenceStart {
  readonly readyMs: number;
  readonly rssBytes: number;
}

/**
 * Times a pinned, heap-capped Node child from spawn until it prints a JSON line with `ready`:
 * bench/lib/lmdb-open-child.mjs (raw LMDB open and one read), or bare Node ({@link BARE_NODE_ARGS}).
 */
export async function timeReference(children: ChildSet, options: { core: number; heapMb: number; args: readonly string[] }): Promise<ReferenceStart> {
  const spawnedMs = performance.now();
  const pinned = children.spawnPinned(options.core, process.execPath, [`--max-old-space-size=${options.heapMb}`, ...options.args]);
  try {
    const line = await waitForLine(pinned, spawnedMs, REFERENCE_TIMEOUT_MS, 'the start-up reference did not print its line', (text) => {
      if (!text.startsWith('{')) return undefined;
      const parsed = JSON.parse(text) as { ready?: unknown; rssBytes?: unknown };
      return parsed.ready === true && typeof parsed.rssBytes === 'number' ? parsed.rssBytes : undefined;
    });
    await exited(pinned, REFERENCE_EXIT_MS);
    return { readyMs: line.ms, rssBytes: line.value };
  } finally {
    await pinned.stop();
  }
}

/** Resolves when the child has exited or `timeoutMs` passed, whichever is first. */
function exited(pinned: Pinned, timeoutMs: number): Promise<void> {
  if (!pinned.alive()) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    pinned.child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Arguments for {@link timeReference} that start bare Node: boot, print the line, exit. */
export const BARE_NODE_ARGS = ['-e', "process.stdout.write(JSON.stringify({ ready: true, rssBytes: process.memoryUsage().rss }) + '\\n')"] as const;

/** Arguments for {@link timeReference} that run the raw LMDB open of bench/lib/lmdb-open-child.mjs. */
export function rawLmdbArgs(dataDir: string, topic: string, maxDbs: number, maxOffset: number): string[] {
  return [join(import.meta.dirname, 'lmdb-open-child.mjs'), join(dataDir, 'log'), topic, String(maxDbs), String(maxOffset)];
}
