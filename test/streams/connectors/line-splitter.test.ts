import { describe, expect, it } from 'vitest';
import { flushLine, INITIAL_SPLIT_STATE, lineHeaders, splitLines, type Line, type SplitState } from '../../../src/streams/connectors/line-splitter.js';

const limits = { maxLineBytes: 10, maxPartBytes: 4 };

/** Feeds `chunks` in turn; returns every line as [text, consumed, part, more] and the final state. */
function feed(chunks: string[], state: SplitState = INITIAL_SPLIT_STATE): { lines: Array<[string, number, number, boolean]>; state: SplitState } {
  const lines: Line[] = [];
  for (const chunk of chunks) {
    const out = splitLines(state, Buffer.from(chunk), limits);
    lines.push(...out.lines);
    state = out.state;
  }
  return { lines: lines.map((l) => [l.value.toString(), l.consumed, l.part, l.more]), state };
}

describe('splitLines', () => {
  it('emits complete lines without their newline and carries a partial line', () => {
    const { lines, state } = feed(['a\nbb\n\ncc']);
    expect(lines).toEqual([['a', 2, 0, false], ['bb', 3, 0, false], ['', 1, 0, false]]);
    expect(state.carry.toString()).toBe('cc');
  });

  it('joins a line split across chunks, and consumed bytes add up to what was read', () => {
    const { lines, state } = feed(['ab', 'c', 'd\ne', 'f\n']);
    expect(lines).toEqual([['abcd', 5, 0, false], ['ef', 3, 0, false]]);
    expect(state.carry.length).toBe(0);
    expect(lines.reduce((n, l) => n + l[1], 0)).toBe('abcd\nef\n'.length);
  });

  it('keeps a line of exactly maxLineBytes whole, and splits a longer one into parts of maxPartBytes', () => {
    expect(feed(['0123456789\n']).lines).toEqual([['0123456789', 11, 0, false]]);
    const { lines } = feed(['0123456789A\nz\n']);
    expect(lines).toEqual([
      ['0123', 4, 1, true],
      ['4567', 4, 2, true],
      ['89A', 4, 3, false],
      ['z', 2, 0, false],
    ]);
  });

  it('splits a long line that arrives in small chunks, never carrying more than maxLineBytes', () => {
    const chunks = [...'abcdefghijklmnopqrstuvwxyz'].concat(['\n']);
    let state: SplitState = INITIAL_SPLIT_STATE;
    const lines: Line[] = [];
    for (const c of chunks) {
      const out = splitLines(state, Buffer.from(c), limits);
      lines.push(...out.lines);
      state = out.state;
      expect(state.carry.length).toBeLessThanOrEqual(limits.maxLineBytes);
    }
    expect(lines.map((l) => l.value.toString()).join('')).toBe('abcdefghijklmnopqrstuvwxyz');
    expect(lines.map((l) => [l.part, l.more])).toEqual([[1, true], [2, true], [3, true], [4, true], [5, true], [6, true], [7, false]]);
    expect(lines.every((l) => l.value.length <= limits.maxPartBytes)).toBe(true);
  });

  it('resumes a split line from a stored part number', () => {
    const { lines } = feed(['xy\n'], { carry: Buffer.alloc(0), part: 2 });
    expect(lines).toEqual([['xy', 3, 3, false]]);
  });
});

describe('flushLine', () => {
  it('makes the carry a final line, the last part of a split line, or nothing', () => {
    expect(flushLine(INITIAL_SPLIT_STATE)).toBeNull();
    expect(flushLine({ carry: Buffer.from('abc'), part: 0 })).toMatchObject({ consumed: 3, part: 0, more: false });
    expect(flushLine({ carry: Buffer.alloc(0), part: 2 })).toMatchObject({ consumed: 0, part: 3, more: false });
  });

  it('gives parts their headers and whole lines none', () => {
    expect(lineHeaders({ value: Buffer.alloc(0), consumed: 1, part: 0, more: false })).toBeUndefined();
    expect(lineHeaders({ value: Buffer.alloc(0), consumed: 4, part: 2, more: true })).toEqual({ 'line-part': '2', 'line-more': 'true' });
  });
});
