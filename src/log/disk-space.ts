import { statfs } from 'node:fs/promises';

/** How often free disk space is sampled while far from the reserve: statfs is cheap, but not per append. */
export const DISK_SAMPLE_INTERVAL_MS = 1000;
/**
 * LMDB writes more than the record bytes (copy-on-write pages, page headers, partly filled pages);
 * between samples the estimate charges each committed byte this many times, to stay on the safe side.
 */
const WRITE_AMPLIFICATION = 2;

/**
 * Estimates the free bytes of the filesystem that holds the log without a system call per append:
 * the last statfs sample minus what was committed since, resampled once a second, and at once
 * whenever the estimate falls below what the caller needs.
 */
export class DiskSpace {
  private sampledFree = Number.POSITIVE_INFINITY;
  private sampledAt = Number.NEGATIVE_INFINITY;
  private committedSince = 0;
  private sampling: Promise<void> | null = null;

  constructor(
    private readonly path: string,
    private readonly now: () => number,
  ) {}

  /** Estimated free bytes; starts a background sample when the last one is stale. */
  free(): number {
    if (this.now() - this.sampledAt >= DISK_SAMPLE_INTERVAL_MS) void this.sample();
    return this.sampledFree - this.committedSince * WRITE_AMPLIFICATION;
  }

  /** Counts bytes just committed against the estimate. */
  consumed(bytes: number): void {
    this.committedSince += bytes;
  }

  /** Resamples if the estimate is below `needed`, so a pessimistic estimate never refuses for long. */
  async ensure(needed: number): Promise<void> {
    if (this.free() < needed) await this.sample();
  }

  /** Samples now and resolves when the figure is fresh. */
  sample(): Promise<void> {
    this.sampling ??= (async () => {
      const committedBefore = this.committedSince;
      try {
        const s = await statfs(this.path);
        this.sampledFree = Number(s.bavail) * Number(s.bsize);
        this.committedSince -= committedBefore;
        this.sampledAt = this.now();
      } catch {
        // A failed statfs leaves the last figure in place; a real failure surfaces in the commit itself.
      } finally {
        this.sampling = null;
      }
    })();
    return this.sampling;
  }
}
