import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { cpuSeconds, memoryBytes } from './proc-stats.js';

/**
 * The bridge side of bench/bridge.ts in a process of its own (bench/lib/bridge-worker.ts), so its
 * CPU is measured apart from the central side's subscriber and the link's proxy, which run in the
 * coordinator. Driven over the IPC channel of child_process.fork; killed by its PID if it misbehaves.
 */

const WORKER = join(import.meta.dirname, 'bridge-worker.ts');
/** Opening the log and the bridge's first (refused) connect take well under this. */
const READY_TIMEOUT_MS = 60_000;
/** close() commits the checkpoint and disconnects; a dead link is dropped within 2 s by the upstream. */
const STOP_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 10_000;
const STDERR_TAIL_CHARS = 4_000;

/** What the worker runs: one bridge on a log folder, pointed at `url` (the link's proxy). */
export interface BridgeSpec {
  readonly dataDir: string;
  /** The bridge's name: its checkpoint group is bridge.<name>, fresh for every row. */
  readonly name: string;
  readonly gatewayId: string;
  readonly topic: string;
  readonly kind: 'mqtt' | 'nats';
  /** mqtt://127.0.0.1:PORT or nats://127.0.0.1:PORT */
  readonly url: string;
  readonly batch: { readonly records: number; readonly gzip: boolean } | null;
  /** NATS: the JetStream stream the bridge creates (subjects edgelog.>). */
  readonly stream: string;
}

/** The bridge's counters, as Bridge.status() reports them. */
export interface BridgeCounters {
  readonly state: string;
  readonly backlogRecords: number;
  readonly sentRecords: number;
  readonly ackedRecords: number;
  readonly resentRecords: number;
  readonly duplicateRecords: number;
  readonly reconnects: number;
  readonly errors: number;
  readonly lastError: string | null;
}

export type ToBridgeWorker = { readonly type: 'start'; readonly spec: BridgeSpec } | { readonly type: 'stop' };
export type FromBridgeWorker =
  /** The bridge is running and its first connect was refused (the link is down). */
  | { readonly type: 'ready'; readonly logRecords: number; readonly counters: BridgeCounters }
  | { readonly type: 'stopped'; readonly counters: BridgeCounters }
  | { readonly type: 'failed'; readonly message: string };

/** One forked bridge worker. */
export class BridgeProcess {
  private readonly child: ChildProcess;
  private stderr = '';
  private waiting: ((message: FromBridgeWorker | Error) => void) | undefined;

  private constructor() {
    this.child = fork(WORKER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-STDERR_TAIL_CHARS);
    });
    this.child.on('message', (message: FromBridgeWorker) => this.answer(message));
    this.child.on('exit', (code, signal) => this.answer(new Error(`bridge worker exited (${code ?? signal}): ${this.stderr}`)));
  }

  /** Forks a worker and waits until its bridge runs with the link down. */
  static async start(spec: BridgeSpec): Promise<{ process: BridgeProcess; logRecords: number; counters: BridgeCounters }> {
    const worker = new BridgeProcess();
    try {
      const ready = await worker.request({ type: 'start', spec }, 'ready', READY_TIMEOUT_MS);
      if (ready.type !== 'ready') throw new Error('edgelog invariant violated: bridge worker answered out of turn');
      return { process: worker, logRecords: ready.logRecords, counters: ready.counters };
    } catch (error) {
      worker.kill();
      throw error;
    }
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`bridge worker did not start: ${this.stderr}`);
    return this.child.pid;
  }

  /** User + system CPU seconds of the worker, all threads (LMDB's included). */
  cpuSeconds(): number {
    return cpuSeconds(this.pid);
  }

  memory(): { peakRssBytes: number; rssBytes: number } {
    return memoryBytes(this.pid);
  }

  /** The last lines the worker wrote to stderr (its bridge's warnings). */
  get output(): string {
    return this.stderr;
  }

  /** Closes the bridge (committing its checkpoint) and the log, returns the counters from just before and waits for the exit. */
  async stop(): Promise<BridgeCounters> {
    const exited = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) resolve();
      else this.child.once('exit', () => resolve());
    });
    const stopped = await this.request({ type: 'stop' }, 'stopped', STOP_TIMEOUT_MS);
    if (stopped.type !== 'stopped') throw new Error('edgelog invariant violated: bridge worker answered out of turn');
    const timer = setTimeout(() => this.kill(), EXIT_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
    return stopped.counters;
  }

  /** SIGKILL by PID, for a worker that failed or hangs. Idempotent. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  private answer(message: FromBridgeWorker | Error): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.(message);
  }

  private request(message: ToBridgeWorker, reply: FromBridgeWorker['type'], timeoutMs: number): Promise<FromBridgeWorker> {
    if (this.waiting !== undefined) throw new Error('edgelog invariant violated: one request to the bridge worker at a time');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`bridge worker: no '${reply}' within ${timeoutMs / 1000} s: ${this.stderr}`));
      }, timeoutMs);
      this.waiting = (answer) => {
        clearTimeout(timer);
        if (answer instanceof Error) reject(answer);
        else if (answer.type === 'failed') reject(new Error(`bridge worker: ${answer.message}`));
        else if (answer.type !== reply) reject(new Error(`bridge worker: '${answer.type}' instead of '${reply}'`));
        else resolve(answer);
      };
      this.child.send(message);
    });
  }
}
