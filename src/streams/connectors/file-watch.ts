import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';

/**
 * Wakes a file source when its file may have changed: fs.watch on the file's folder (not on the
 * file: a watch on a file follows its inode, and after a rotation the path names another file),
 * plus a poll every `pollIntervalMs`, because fs.watch misses events on network and overlay
 * filesystems, cannot watch a folder that does not exist yet, and may run out of inotify watches.
 * Wake-ups are coalesced by the caller (a flag, not a queue), so a burst of events costs nothing.
 */
export class FileWatch {
  private watcher: FSWatcher | null = null;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private watchFailedLogged = false;

  constructor(
    private readonly file: string,
    pollIntervalMs: number,
    private readonly onChange: () => void,
    private readonly logger: Logger,
  ) {
    this.timer = setInterval(() => {
      // A folder that did not exist, or a watch that failed, is tried again at each poll.
      if (this.watcher === null) this.startWatch();
      this.onChange();
    }, pollIntervalMs);
    this.startWatch();
  }

  private startWatch(): void {
    if (this.closed) return;
    const name = basename(this.file);
    try {
      const watcher = watch(dirname(this.file), { persistent: false }, (_event, filename) => {
        // Linux names the entry; elsewhere the name may be missing, and then any change counts.
        if (filename === null || filename === name) this.onChange();
      });
      watcher.on('error', (error) => {
        this.logger.warn({ err: error, file: this.file }, 'watching the file folder failed; polling until it can be watched again');
        watcher.close();
        if (this.watcher === watcher) this.watcher = null;
      });
      this.watcher = watcher;
      this.watchFailedLogged = false;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // A missing folder is the usual case (the source waits for its file) and is logged by the source.
      if (code !== 'ENOENT' && !this.watchFailedLogged) {
        this.watchFailedLogged = true;
        this.logger.warn({ file: this.file, code }, 'cannot watch the file folder; polling only');
      }
    }
  }

  /** Stops the watch and the poll. Idempotent. */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.watcher?.close();
    this.watcher = null;
  }
}
