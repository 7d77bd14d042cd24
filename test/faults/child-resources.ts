/**
 * The resources of a gateway (or simulator) running as a child process, for the soak (issue 8):
 * its open-files limit, and memory readings taken after a forced full GC through the child's
 * inspector. Without the GC a heap reading is mostly garbage waiting for the next major
 * collection: with 10,000 connections the gateway's used heap was measured rising from 114 to
 * 184 MB over two minutes and falling back at each mark-compact, so comparing raw readings
 * compares GC phases, not live memory. After a forced GC, readings of a steady gateway agree
 * within a fraction of a MB, so a small leak shows. The in-process suites do the same with
 * `memory()` in hostile-helpers.ts.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

/**
 * NODE_OPTIONS for the child: `gc()` exposed, and an inspector on a loopback port the kernel picks
 * (the child prints `Debugger listening on ws://...`, see {@link INSPECTOR_URL_LINE}).
 */
export const INSPECTOR_NODE_OPTIONS = '--expose-gc --inspect=127.0.0.1:0';
/** The line the child prints with its inspector's WebSocket URL (the first group). */
export const INSPECTOR_URL_LINE = /Debugger listening on (ws:\/\/\S+)/;
/** A forced GC of ~100 MB of heap takes ~0.2 s here and ~1.5 s on a machine loaded four times over: far more is a hung child. */
const INSPECTOR_CALL_TIMEOUT_MS = 30_000;

/** The child's memory after a full GC. */
export interface ChildMemoryReading {
  /** V8 heap in use: live objects only, the GC having just run. */
  heapUsedBytes: number;
  /**
   * V8 heap committed. What it holds beyond heapUsedBytes is free heap V8 keeps for later
   * allocations and returns when it sees fit (~120 MiB of it after the connect storm here): part
   * of the RSS that comes and goes with V8's choices, not with what the gateway holds.
   */
  heapTotalBytes: number;
  /** Memory of C++ objects bound to JS ones (Buffers' backing stores among them). */
  externalBytes: number;
  /** Resident set of the whole process (/proc/PID/status VmRSS). */
  rssBytes: number;
  /**
   * Its anonymous part (RssAnon): heap, malloc, stacks. The rest is mostly file pages, chiefly
   * the log's LMDB map, which grows with the data written (~30 MiB a minute at 1,000 readings/s)
   * and which the kernel may drop at will: not memory the gateway holds on to.
   */
  rssAnonBytes: number;
  /** How long the forced GC took in the child. */
  gcMs: number;
}

/** What the child evaluates: one full GC, then its own process.memoryUsage(). */
const READ_MEMORY = `(() => {
  const startMs = performance.now();
  gc();
  const gcMs = performance.now() - startMs;
  const m = process.memoryUsage();
  return { heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal, externalBytes: m.external, gcMs };
})()`;

interface CdpAnswer {
  id?: number;
  result?: { result?: { value?: unknown }; exceptionDetails?: { text?: string } };
  error?: { message: string };
}

/** A Chrome DevTools Protocol session with a child's inspector, used for memory readings only. */
export class ChildInspector {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (answer: CdpAnswer) => void; reject: (error: Error) => void }>();

  private constructor(
    private readonly socket: WebSocket,
    private readonly pid: number,
  ) {
    socket.on('message', (data: Buffer) => {
      const answer = JSON.parse(data.toString('utf8')) as CdpAnswer;
      if (answer.id === undefined) return; // an event: none is enabled, but ignore any
      this.pending.get(answer.id)?.resolve(answer);
      this.pending.delete(answer.id);
    });
    socket.on('close', () => {
      for (const { reject } of this.pending.values()) reject(new Error('the child closed its inspector connection (did it exit?)'));
      this.pending.clear();
    });
    socket.on('error', () => {}); // a failure shows as a close, which fails the calls waiting
  }

  /** Connects to the inspector at `url` (from {@link INSPECTOR_URL_LINE}) of the process `pid`. */
  static async connect(url: string, pid: number): Promise<ChildInspector> {
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', (error) => reject(new Error(`cannot reach the child's inspector at ${url}: ${error.message}`)));
    });
    return new ChildInspector(socket, pid);
  }

  /** Forces a full GC in the child and reads its memory. */
  async memory(): Promise<ChildMemoryReading> {
    const answer = await this.call('Runtime.evaluate', { expression: READ_MEMORY, returnByValue: true });
    const exception = answer.result?.exceptionDetails;
    if (exception !== undefined) throw new Error(`reading the child's memory failed: ${exception.text ?? 'an exception'} (was it started with ${INSPECTOR_NODE_OPTIONS}?)`);
    const heap = answer.result?.result?.value as Omit<ChildMemoryReading, 'rssBytes' | 'rssAnonBytes'>;
    return { ...heap, ...residentSet(this.pid) };
  }

  /** Disconnects and waits for the close (bounded), so the child does not wait for its debugger when it exits. Idempotent. */
  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    this.socket.close();
    const timer = setTimeout(() => this.socket.terminate(), INSPECTOR_CALL_TIMEOUT_MS);
    await closed;
    clearTimeout(timer);
  }

  private call(method: string, params: Record<string, unknown>): Promise<CdpAnswer> {
    const id = this.nextId++;
    return new Promise<CdpAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`the child's inspector did not answer ${method} within ${INSPECTOR_CALL_TIMEOUT_MS} ms`));
      }, INSPECTOR_CALL_TIMEOUT_MS);
      this.pending.set(id, {
        resolve: (answer) => {
          clearTimeout(timer);
          if (answer.error !== undefined) reject(new Error(`${method}: ${answer.error.message}`));
          else resolve(answer);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }
}

/** VmRSS and RssAnon of a running process, in bytes (Linux /proc/PID/status). */
export function residentSet(pid: number): { rssBytes: number; rssAnonBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
    if (match === null) throw new Error(`/proc/${pid}/status has no ${field} line`);
    return Number(match[1]) * 1024;
  };
  return { rssBytes: kib('VmRSS'), rssAnonBytes: kib('RssAnon') };
}

/** The soft and hard limits of open files of a running process (Linux /proc/PID/limits). */
export function openFilesLimit(pid: number): { soft: number; hard: number } {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  if (line === undefined) throw new Error(`/proc/${pid}/limits has no 'Max open files' line`);
  const [soft, hard] = line.slice('Max open files'.length).trim().split(/\s+/);
  const parse = (value: string | undefined) => (value === 'unlimited' ? Number.POSITIVE_INFINITY : Number(value));
  return { soft: parse(soft), hard: parse(hard) };
}

/**
 * Makes sure the process `pid` (`who`, for the message) may open `needed` files: raises its
 * limit with prlimit(1) when it is lower (anyone may raise the soft limit up to the hard one; a
 * higher hard limit needs root with CAP_SYS_RESOURCE). Throws, saying what to do, when it cannot.
 * Node raises its own soft limit to the hard one at start, so a Node child short of files is
 * short of the hard limit it inherited.
 */
export function ensureOpenFiles(pid: number, needed: number, who: string): { soft: number; raised: boolean } {
  const before = openFilesLimit(pid);
  if (before.soft >= needed) return { soft: before.soft, raised: false };
  const hard = Math.max(needed, before.hard);
  const run = spawnSync('prlimit', [`--nofile=${needed}:${hard === Number.POSITIVE_INFINITY ? 'unlimited' : hard}`, '--pid', String(pid)], { encoding: 'utf8' });
  const after = openFilesLimit(pid);
  if (after.soft < needed) {
    const why = run.error?.message ?? (run.stderr.trim() || `exit ${run.status}`);
    throw new Error(
      `${who} may open ${after.soft} files (hard limit ${before.hard}) and needs ${needed}; prlimit could not raise it (${why}). ` +
        `Raise the limit of the shell that runs the tests to ${needed} or more (ulimit -n, soft and hard; a higher hard limit needs root with CAP_SYS_RESOURCE).`,
    );
  }
  return { soft: after.soft, raised: true };
}

/** The arithmetic mean; NaN for none. */
export function mean(values: readonly number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** Bytes as MiB with one decimal, for figures and messages. */
export function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}
