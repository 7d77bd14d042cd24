import { closeSync, openSync, writeSync } from 'node:fs';

/**
 * At least this often buffered lines reach the file, so a test that SIGKILLs the simulator (or reads
 * the file while it runs) misses at most the last second of acks.
 */
export const ACK_LOG_FLUSH_INTERVAL_MS = 1_000;
/** Lines held before an early flush: a bound on the buffer's memory (~60 bytes a line) at any ack rate. */
export const ACK_LOG_MAX_BUFFERED_LINES = 10_000;

/**
 * `--ack-log FILE`: one NDJSON line `{"device":"<id>","stream":"<stream>","seq":<n>}` per
 * acknowledged reading, so a fault test knows exactly which readings the gateway acknowledged.
 * Buffered, written with plain synchronous writes (a flush is whole lines, never half of one) every
 * {@link ACK_LOG_FLUSH_INTERVAL_MS} and at {@link AckLog.close}, and at process exit as a last resort.
 */
export class AckLog {
  private fd: number | undefined;
  private lines: string[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly onExit = (): void => this.close();

  /** Opens (truncates) `file`; throws the file system's error (ENOENT, EACCES, EISDIR) when it cannot. */
  constructor(readonly file: string) {
    this.fd = openSync(file, 'w');
    this.timer = setInterval(() => this.flush(), ACK_LOG_FLUSH_INTERVAL_MS);
    // The timer alone must not keep a finished run alive.
    this.timer.unref();
    process.once('exit', this.onExit);
  }

  /** Records one acknowledged reading. */
  record(device: string, stream: string, seq: number): void {
    if (this.fd === undefined) return;
    this.lines.push(`{"device":${JSON.stringify(device)},"stream":${JSON.stringify(stream)},"seq":${seq}}\n`);
    if (this.lines.length >= ACK_LOG_MAX_BUFFERED_LINES) this.flush();
  }

  /** Writes the buffered lines to the file. */
  flush(): void {
    if (this.fd === undefined || this.lines.length === 0) return;
    const chunk = Buffer.from(this.lines.join(''), 'utf8');
    this.lines = [];
    // writeSync may write less than asked; bounded: each pass writes at least one byte or throws.
    for (let at = 0; at < chunk.length; ) at += writeSync(this.fd, chunk, at);
  }

  /** Flushes and closes the file; idempotent. */
  close(): void {
    if (this.fd === undefined) return;
    clearInterval(this.timer);
    process.off('exit', this.onExit);
    this.flush();
    closeSync(this.fd);
    this.fd = undefined;
  }
}
