import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpuSeconds, memoryBytes } from './proc-stats.js';

/** Clock ticks per second of /proc/stat (USER_HZ), read as proc-stats.ts does; 100 on Linux almost always. */
const CLOCK_TICKS_PER_S = (() => {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();
/** One sample a second, as the footprint issue asks; the window's length bounds the count. */
export const SAMPLE_INTERVAL_MS = 1_000;

/** RSS and CPU of one process over a window, sampled every second from /proc/PID. */
export interface WindowFigures {
  readonly seconds: number;
  readonly samples: number;
  readonly rssMeanBytes: number;
  readonly rssMaxBytes: number;
  /** CPU seconds (user + system, all threads) per second of window, as a percentage of one core. */
  readonly cpuPercent: number;
  /** Other work on the pinned core: its busy time minus the process's own, as a percentage of it. */
  readonly otherOnCorePercent: number;
  /** VmHWM when the window closed: the process's peak RSS since it started. */
  readonly peakRssBytes: number;
  /** RSS split at the last sample: anonymous memory (heap, buffers) and file pages mapped (LMDB's data file, code). */
  readonly rssAnonBytes: number;
  readonly rssFileBytes: number;
}

/** RssAnon and RssFile of /proc/PID/status, in bytes. */
function rssSplit(pid: number): { rssAnonBytes: number; rssFileBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rssAnonBytes: kib('RssAnon'), rssFileBytes: kib('RssFile') };
}

/**
 * Busy seconds of one core (user, nice, system, irq, softirq) from its `cpuN` line of /proc/stat:
 * with the process pinned there, the difference tells whether someone else shared its core.
 */
export function coreBusySeconds(core: number): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${core} `));
  if (line === undefined) throw new Error(`no cpu${core} line in /proc/stat`);
  const [, user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).map(Number);
  const busy = [user, nice, system, irq, softirq];
  if (!busy.every((v) => Number.isFinite(v))) throw new Error(`cannot parse /proc/stat: ${line}`);
  return busy.reduce<number>((sum, v) => sum + (v as number), 0) / CLOCK_TICKS_PER_S;
}

/**
 * Samples `pid`'s VmRSS every second for `seconds` and its CPU over the whole window. Rejects if
 * the process disappears mid-window (a crash, the heap cap); `alive` is checked every sample.
 */
export async function sampleWindow(pid: number, core: number, seconds: number, alive: () => boolean): Promise<WindowFigures> {
  const rss: number[] = [];
  const cpu0 = cpuSeconds(pid);
  const core0 = coreBusySeconds(core);
  const t0 = performance.now();
  // Bounded: one sample a second for the window's length.
  for (let i = 0; i < Math.max(1, Math.round(seconds * 1000 / SAMPLE_INTERVAL_MS)); i++) {
    const next = t0 + (i + 1) * SAMPLE_INTERVAL_MS;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - performance.now())));
    if (!alive()) throw new Error(`process ${pid} exited during the measurement window`);
    rss.push(memoryBytes(pid).rssBytes);
  }
  const wallS = (performance.now() - t0) / 1000;
  const cpuS = cpuSeconds(pid) - cpu0;
  const coreS = coreBusySeconds(core) - core0;
  const split = rssSplit(pid);
  return {
    ...split,
    seconds: wallS,
    samples: rss.length,
    rssMeanBytes: rss.reduce((a, b) => a + b, 0) / rss.length,
    rssMaxBytes: Math.max(...rss),
    cpuPercent: (100 * cpuS) / wallS,
    otherOnCorePercent: Math.max(0, (100 * (coreS - cpuS)) / wallS),
    peakRssBytes: memoryBytes(pid).peakRssBytes,
  };
}
