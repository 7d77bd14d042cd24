import { describe, expect, it } from 'vitest';
import { CommitLog } from '../../src/index.js';
import { MAX_STATE_KEY_BYTES } from '../../src/log/state.js';
import { bytes, openTestLog, readAll } from '../helpers/log.js';
import { refusal } from '../helpers/refusal.js';
import { tempDir } from '../helpers/temp-dir.js';

const text = (b: Buffer | undefined): string | undefined => b?.toString('utf8');
const entries = (log: CommitLog, store: string): string[] => [...log.stateEntries(store)].map((e) => `${e.key}=${e.value.toString()}`);

describe('state stores', () => {
  it('writes state with an append and an offset commit in one transaction, and reads it back after a reopen', async () => {
    const dir = tempDir();
    const log = await openTestLog({ dir });
    await log.createTopic('in');
    await log.createTopic('out');
    await log.append('in', [{ value: bytes('1') }, { value: bytes('2') }]);
    const commitsBefore = log.commitCount;
    await log.append('out', [{ value: bytes('sum=3') }], {
      commit: { group: 'proc', offsets: [{ topic: 'in', partition: 0, offset: 2 }] },
      state: { store: 'proc', puts: [{ key: 'window/dev-1', value: bytes('{"sum":3}') }, { key: 'alert/dev-1', value: bytes('raised') }] },
    });
    expect(log.commitCount).toBe(commitsBefore + 1);
    // Input consumed with no output: offsets and state without records; null deletes a key.
    await log.commitOffsets('proc', [{ topic: 'in', partition: 0, offset: 2 }], { state: { store: 'proc', puts: [{ key: 'alert/dev-1', value: null }] } });
    await log.putState({ store: 'other', puts: [{ key: 'position', value: bytes('42') }, { key: 'gerät/😀', value: bytes('any UTF-8 key') }] });
    await log.close();

    const again = await CommitLog.open({ dir, retentionSchedule: null });
    try {
      expect(entries(again, 'proc')).toEqual(['window/dev-1={"sum":3}']);
      expect(text(again.getState('proc', 'window/dev-1'))).toBe('{"sum":3}');
      expect(again.getState('proc', 'alert/dev-1')).toBeUndefined();
      expect(text(again.getState('other', 'position'))).toBe('42');
      expect(readAll(again, 'out').map((r) => r.value.toString())).toEqual(['sum=3']);
      expect(await again.deleteStateStore('proc')).toBe(1);
      expect(entries(again, 'proc')).toEqual([]);
      expect(entries(again, 'other')).toEqual(['gerät/😀=any UTF-8 key', 'position=42']);
    } finally {
      await again.close();
    }
  });

  it('keeps stores apart even when one name starts with another', async () => {
    const log = await openTestLog();
    await log.putState({ store: 'a', puts: [{ key: 'k', value: bytes('1') }] });
    await log.putState({ store: 'ab', puts: [{ key: 'k', value: bytes('2') }] });
    await log.putState({ store: 'a.b', puts: [{ key: 'k', value: bytes('3') }] });
    expect(entries(log, 'a')).toEqual(['k=1']);
    expect(entries(log, 'ab')).toEqual(['k=2']);
    expect(await log.deleteStateStore('a')).toBe(1);
    expect(entries(log, 'a.b')).toEqual(['k=3']);
  });

  it('writes no state when the append it rides with is refused', async () => {
    const log = await openTestLog();
    await log.createTopic('in');
    await log.createTopic('out');
    const ahead = await refusal(() =>
      log.append('out', [{ value: bytes('x') }], {
        commit: { group: 'proc', offsets: [{ topic: 'in', partition: 0, offset: 5 }] },
        state: { store: 'proc', puts: [{ key: 'k', value: bytes('v') }] },
      }),
    );
    expect(ahead.code).toBe('OFFSET_AHEAD');
    expect(entries(log, 'proc')).toEqual([]);
    expect(readAll(log, 'out')).toEqual([]);
  });

  it('lets state be written while the log is full, like offset commits', async () => {
    const log = await openTestLog({ maxLogBytes: 200 });
    await log.createTopic('t');
    await log.append('t', [{ value: Buffer.alloc(120) }]);
    expect((await refusal(() => log.append('t', [{ value: Buffer.alloc(120) }]))).code).toBe('LOG_FULL');
    await log.putState({ store: 's', puts: [{ key: 'k', value: bytes('v') }] });
    expect(entries(log, 's')).toEqual(['k=v']);
  });

  it.each([
    ['a store name with a slash', { store: 'a/b', puts: [{ key: 'k', value: bytes('v') }] }, /state store name must be 1 to 249 of a-z A-Z 0-9 \. _ -, got "a\/b"/],
    ['no puts', { store: 's', puts: [] }, /state\.puts must be an array of 1 to 10000/],
    ['an empty key', { store: 's', puts: [{ key: '', value: bytes('v') }] }, /state\.puts\[0\]\.key must be a non-empty string of at most 1024 bytes/],
    ['a key too long', { store: 's', puts: [{ key: 'k'.repeat(MAX_STATE_KEY_BYTES + 1), value: bytes('v') }] }, /state\.puts\[0\]\.key must be a non-empty string of at most 1024 bytes/],
    ['a value that is not bytes', { store: 's', puts: [{ key: 'k', value: 'text' }] }, /state\.puts\[0\]\.value must be bytes \(at most 1048576\) or null to delete, got "text"/],
    ['one key twice', { store: 's', puts: [{ key: 'k', value: null }, { key: 'k', value: bytes('v') }] }, /state\.puts\[1\] names key 'k' a second time/],
  ])('refuses %s, naming what is wrong and what is allowed', async (_, write, message) => {
    const log = await openTestLog();
    const error = await refusal(() => log.putState(write as never));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toMatch(message);
  });
});
