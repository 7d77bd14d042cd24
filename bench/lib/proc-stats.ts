import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ, 100 on Linux almost always). */
const CLOCK_TICKS_PER_S = readClockTicks();

function readClockTicks(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}

/** User plus system CPU seconds of process `pid` and all its threads (utime + stime, proc(5)). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of the line, utime and stime, are the 12th and 13th after the name.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`cannot parse /proc/${pid}/stat: ${stat}`);
  return (utime + stime) / CLOCK_TICKS_PER_S;
}

/** Peak resident set (VmHWM) and current resident set (VmRSS) of process `pid`, in bytes. */
export function memoryBytes(pid: number): { peakRssBytes: number; rssBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    if (match === null) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(match[1]) * 1024;
  };
  return { peakRssBytes: kib('VmHWM'), rssBytes: kib('VmRSS') };
}

/**
 * CPU seconds the whole machine spent busy (user, nice, system, irq, softirq; not idle, iowait or
 * steal) since boot, from /proc/stat. Over a window, minus the processes we measure, it tells how
 * much other work (another session's tests, a build) shared the cores with the benchmark.
 */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [label, user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).map((f, i) => (i === 0 ? Number.NaN : Number(f)));
  if (label === undefined || ![user, nice, system, irq, softirq].every((v) => Number.isFinite(v))) throw new Error(`cannot parse /proc/stat: ${line}`);
  return ((user as number) + (nice as number) + (system as number) + (irq as number) + (softirq as number)) / CLOCK_TICKS_PER_S;
}
