import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { FromWorker, LoadMark, LoadSpec, LoadTotals, ToWorker } from './load-protocol.js';

const WORKER = join(import.meta.dirname, 'load-worker.ts');
/** The worker gives its devices 30 s to connect and says so; this covers a worker that hangs. */
const CONNECT_TIMEOUT_MS = 45_000;
const REPLY_TIMEOUT_MS = 15_000;
const EXIT_TIMEOUT_MS = 10_000;

/** One forked load process (bench/lib/load-worker.ts), driven over IPC; killed by its PID if it misbehaves. */
export class LoadProcess {
  private readonly child: ChildProcess;
  private readonly waiting: Array<(message: FromWorker) => boolean> = [];
  private failure: Error | undefined;
  private stderr = '';
  /** How long it took from the fork until every device was connected. */
  connectMs = 0;

  private constructor(readonly spec: LoadSpec) {
    this.child = fork(WORKER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4000);
    });
    this.child.on('message', (message: FromWorker) => {
      if (message.type === 'failed') this.fail(new Error(`load process ${spec.idPrefix}: ${message.message}`));
      const at = this.waiting.findIndex((accept) => accept(message));
      if (at >= 0) this.waiting.splice(at, 1);
    });
    this.child.on('exit', (code, signal) => {
      if (this.waiting.length > 0) this.fail(new Error(`load process ${spec.idPrefix} exited (${code ?? signal}) mid-run: ${this.stderr}`));
    });
  }

  /** Forks a load process and waits until all its devices are connected. */
  static async start(spec: LoadSpec): Promise<LoadProcess> {
    const startedMs = performance.now();
    const load = new LoadProcess(spec);
    try {
      await load.request({ type: 'start', spec }, 'connected', CONNECT_TIMEOUT_MS);
      load.connectMs = performance.now() - startedMs;
    } catch (error) {
      load.kill();
      throw error;
    }
    return load;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Starts publishing (the publisher waits for it; a fleet samples from each device's boot regardless). */
  go(): void {
    if (this.failure === undefined) this.child.send({ type: 'go' } satisfies ToWorker);
  }

  mark(): Promise<LoadMark> {
    return this.request({ type: 'mark' }, 'mark', REPLY_TIMEOUT_MS) as Promise<LoadMark>;
  }

  /** Stops the load, returns its totals and waits for the process to exit. */
  async stop(): Promise<LoadTotals> {
    const exited = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) resolve();
      else this.child.once('exit', () => resolve());
    });
    const totals = (await this.request({ type: 'stop' }, 'stopped', REPLY_TIMEOUT_MS)) as LoadTotals;
    const timer = setTimeout(() => this.kill(), EXIT_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
    return totals;
  }

  /** SIGKILL by PID, for a load process that failed or hangs. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const waiting = this.waiting.splice(0);
    for (const accept of waiting) accept({ type: 'failed', message: error.message });
  }

  private request(message: ToWorker, reply: FromWorker['type'], timeoutMs: number): Promise<FromWorker> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = this.waiting.indexOf(accept);
        if (at >= 0) this.waiting.splice(at, 1);
        reject(new Error(`load process ${this.spec.idPrefix}: no '${reply}' within ${timeoutMs / 1000} s: ${this.stderr}`));
      }, timeoutMs);
      const accept = (answer: FromWorker): boolean => {
        if (answer.type === 'failed') {
          clearTimeout(timer);
          reject(this.failure ?? new Error(answer.message));
          return true;
        }
        if (answer.type !== reply) return false;
        clearTimeout(timer);
        resolve(answer);
        return true;
      };
      this.waiting.push(accept);
      this.child.send(message);
    });
  }
}
