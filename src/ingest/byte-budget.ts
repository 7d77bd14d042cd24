/**
 * Bytes of readings the gateway holds between a socket and the disk (config
 * `ingest.maxPendingBytes`). Takers wait in FIFO order while it is spent, which is what stops
 * the gateway reading sockets: TCP backpressure instead of unbounded buffering (DESIGN.md,
 * "Memory is bounded").
 */
export class ByteBudget {
  private usedBytes = 0;
  private readonly waiters: { bytes: number; resolve: () => void }[] = [];

  constructor(readonly limitBytes: number) {}

  get used(): number {
    return this.usedBytes;
  }

  /** Takes `bytes` at once and returns true, or returns false when they must be waited for (see {@link acquire}). */
  tryAcquire(bytes: number): boolean {
    if (this.waiters.length > 0 || !this.fits(bytes)) return false;
    this.usedBytes += bytes;
    return true;
  }

  /** Waits until `bytes` fit, behind earlier waiters. One taker larger than the whole budget passes when nothing else is held. */
  acquire(bytes: number): Promise<void> {
    if (this.tryAcquire(bytes)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ bytes, resolve }));
  }

  release(bytes: number): void {
    this.usedBytes -= bytes;
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) {
      const waiter = this.waiters.shift()!;
      this.usedBytes += waiter.bytes;
      waiter.resolve();
    }
  }

  private fits(bytes: number): boolean {
    return this.usedBytes === 0 || this.usedBytes + bytes <= this.limitBytes;
  }
}
