/**
 * Cuts the bytes of a tailed file into lines, pure and incremental: bytes after the last newline
 * are carried to the next chunk (a partial line is never emitted while the file may still end it).
 *
 * A line whose record would exceed the topic's maxMessageBytes is split, not dead-lettered: the
 * dead-letter topic has the same size limit, and splitting keeps every byte, in order, in the
 * topic the line belongs to. Each part of a split line carries the headers
 * {@link LINE_PART_HEADER} (1, 2, …) and {@link LINE_MORE_HEADER} ('true' on every part but the
 * last), so a consumer can join them again. Memory is bounded by the carry, at most one line
 * limit (maxLineBytes).
 */

export const LINE_PART_HEADER = 'line-part';
export const LINE_MORE_HEADER = 'line-more';
const NEWLINE = 0x0a;
const EMPTY = Buffer.alloc(0);

/** One line (or one part of a split line) to append. */
export interface Line {
  value: Buffer;
  /** Bytes of the file this line accounts for: its value and its newline, if it had one. */
  consumed: number;
  /** 0 for a whole line; 1, 2, … for the parts of a split line. */
  part: number;
  /** A split line's part that more parts follow. */
  more: boolean;
}

export interface SplitState {
  /** Bytes after the last emitted line, not yet ended by a newline. */
  carry: Buffer;
  /** Parts of the line in progress already emitted (0 when it has not been split). */
  part: number;
}

export interface LineLimits {
  /** The longest value of a whole line (its record fits maxMessageBytes without part headers). */
  maxLineBytes: number;
  /** The longest value of one part of a split line (room left for the part headers). */
  maxPartBytes: number;
}

export const INITIAL_SPLIT_STATE: Readonly<SplitState> = Object.freeze({ carry: EMPTY, part: 0 });

/** The lines that `chunk` completes, and what is carried after them. */
export function splitLines(state: SplitState, chunk: Buffer, limits: LineLimits): { lines: Line[]; state: SplitState } {
  const { maxLineBytes, maxPartBytes } = limits;
  const data = state.carry.length === 0 ? chunk : Buffer.concat([state.carry, chunk]);
  const lines: Line[] = [];
  let part = state.part;
  let pos = 0;
  for (;;) {
    const nl = data.indexOf(NEWLINE, pos);
    const end = nl === -1 ? data.length : nl;
    // Cut parts while what is left of the line is too long to be (the last part of) one record.
    while (end - pos > (part === 0 ? maxLineBytes : maxPartBytes)) {
      lines.push({ value: data.subarray(pos, pos + maxPartBytes), consumed: maxPartBytes, part: ++part, more: true });
      pos += maxPartBytes;
    }
    if (nl === -1) break;
    lines.push({ value: data.subarray(pos, nl), consumed: nl - pos + 1, part: part === 0 ? 0 : part + 1, more: false });
    part = 0;
    pos = nl + 1;
  }
  // A copy: the carry must not pin the whole chunk in memory until the line ends.
  const carry = pos === data.length ? EMPTY : Buffer.from(data.subarray(pos));
  return { lines, state: { carry, part } };
}

/**
 * The carried bytes as a final line, for when the file will not end it (it was rotated or
 * truncated); null when nothing is carried and no split line is open.
 */
export function flushLine(state: SplitState): Line | null {
  if (state.carry.length === 0 && state.part === 0) return null;
  return { value: state.carry, consumed: state.carry.length, part: state.part === 0 ? 0 : state.part + 1, more: false };
}

/** The headers of a line's record: none for a whole line. */
export function lineHeaders(line: Line): Record<string, string> | undefined {
  return line.part === 0 ? undefined : { [LINE_PART_HEADER]: String(line.part), [LINE_MORE_HEADER]: String(line.more) };
}
