import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface Profile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

export interface Frame {
  readonly frame: string;
  readonly selfPercent: number;
}

/**
 * The newest main-thread .cpuprofile (node --cpu-prof) in `dir`, or undefined. Node names them
 * CPU.DATE.TIME.PID.THREAD.SEQ.cpuprofile; thread 0 is the main thread (tsx's loader runs in another).
 */
export function newestProfile(dir: string): string | undefined {
  const files = readdirSync(dir).filter((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f)).sort();
  const last = files[files.length - 1];
  return last === undefined ? undefined : join(dir, last);
}

/**
 * The functions with the most self time in a V8 CPU profile (by sample count), as a share of the
 * main thread's busy samples ("(idle)" left out, "(garbage collector)" and "(program)" kept as V8
 * names them), so "where the time goes" is one table. `root` shortens file paths.
 */
export function topSelfFrames(file: string, count: number, root: string): Frame[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const hits = new Map<number, number>();
  let total = 0;
  if (profile.samples !== undefined) {
    for (const id of profile.samples) {
      hits.set(id, (hits.get(id) ?? 0) + 1);
      total++;
    }
  } else {
    for (const n of profile.nodes) {
      hits.set(n.id, n.hitCount ?? 0);
      total += n.hitCount ?? 0;
    }
  }
  const byFrame = new Map<string, number>();
  for (const [id, n] of hits) {
    const f = byId.get(id)?.callFrame;
    if (f === undefined) continue;
    // Idle samples are time the gateway waited (for the disk or the network): share of busy time only.
    if (f.functionName === '(idle)') {
      total -= n;
      continue;
    }
    const where = f.url === '' ? '' : ` ${shorten(f.url, root)}:${f.lineNumber + 1}`;
    const key = `${f.functionName || '(anonymous)'}${where}`;
    byFrame.set(key, (byFrame.get(key) ?? 0) + n);
  }
  return [...byFrame.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([frame, n]) => ({ frame, selfPercent: total === 0 ? 0 : (100 * n) / total }));
}

function shorten(url: string, root: string): string {
  const path = url.startsWith('file://') ? url.slice('file://'.length) : url;
  if (path.startsWith(root)) return relative(root, path);
  const nm = path.lastIndexOf('node_modules/');
  return nm >= 0 ? path.slice(nm + 'node_modules/'.length) : path;
}
