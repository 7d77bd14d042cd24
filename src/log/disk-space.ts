import { statfs } from 'node:fs/promises';

/** How often free disk space is sampled: statfs is cheap, but not per append. */
export const DISK_SAMPLE_INTERVAL_MS = 1000;

/**
 * Tracks the free bytes of the filesystem that holds the log, refreshed in the background at most
 * once per interval, so the append path reads a number instead of making a system call.
 */
export class DiskSpace {
  private freeBytes = Number.POSITIVE_INFINITY;
  private sampledAt = 0;
  private sampling: Promise<void> | null = null;

  constructor(
    private readonly path: string,
    private readonly now: () => number,
  ) {}

  /** The last sampled free bytes; starts a new sample if the last one is stale. */
  free(): number {
    if (this.now() - this.sampledAt >= DISK_SAMPLE_INTERVAL_MS) void this.sample();
    return this.freeBytes;
  }

  /** Samples now and resolves when the figure is fresh. */
  sample(): Promise<void> {
    this.sampling ??= statfs(this.path)
      .then((s) => {
        this.freeBytes = Number(s.bavail) * Number(s.bsize);
        this.sampledAt = this.now();
      })
      .catch(() => {
        // A failed statfs leaves the last figure in place; the commit itself reports a real failure.
      })
      .finally(() => {
        this.sampling = null;
      });
    return this.sampling;
  }
}
