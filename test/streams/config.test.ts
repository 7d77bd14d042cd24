import { describe, expect, it } from 'vitest';
import { EdgelogError } from '../../src/errors.js';
import { DEFAULT_MAX_OPEN_WINDOWS, parseStreamsConfig } from '../../src/streams/config.js';

function refusal(raw: unknown): string {
  try {
    parseStreamsConfig(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(EdgelogError);
    expect((error as EdgelogError).code).toBe('INVALID_CONFIG');
    return (error as Error).message;
  }
  throw new Error('expected INVALID_CONFIG');
}

const window = { size: '1m', field: 'temperature' };
const proc = (pipeline: unknown[], extra: Record<string, unknown> = {}) => [{ name: 'p', from: 'climate', to: 'out', pipeline, ...extra }];

describe('streams config', () => {
  it('parses every step kind with its defaults, and freezes the result', () => {
    const [p] = parseStreamsConfig([
      {
        name: 'climate-1m',
        from: ['climate', 'climate-b'],
        to: 'climate-1m',
        pipeline: [
          { filter: { all: [{ field: 'temperature', op: '>', value: -40 }, { any: [{ field: 'ok', op: '==', value: true }, { field: 'ok', op: 'exists' }] }] } },
          { map: { fields: { device: '$key', tempF: { from: 'temperature', scale: 1.8, offset: 32, decimals: 2 }, ts: 'ts' } } },
          { window: { size: '1m', advance: '30s', grace: '10s', field: 'tempF', aggregates: ['p95', 'count'], timeField: 'ts' } },
          { alert: { name: 'hot', field: 'p95', above: 80, clearBelow: 75 } },
        ],
      },
    ]);
    expect(p).toMatchObject({ name: 'climate-1m', from: ['climate', 'climate-b'], to: 'climate-1m', maxOpenWindows: DEFAULT_MAX_OPEN_WINDOWS });
    expect(p!.pipeline.map((s) => s.kind)).toEqual(['filter', 'map', 'window', 'alert']);
    expect(p!.pipeline[1]).toMatchObject({ keep: false, fields: [{ name: 'device', source: { special: '$key' } }, { name: 'tempF', scale: 1.8, offset: 32, decimals: 2 }, { name: 'ts', scale: 1, offset: 0, decimals: null }] });
    // Aggregates come back in their canonical order; advance defaults to the size (tumbling).
    expect(p!.pipeline[2]).toMatchObject({ sizeMs: 60_000, advanceMs: 30_000, graceMs: 10_000, aggregates: ['count', 'p95'], timeField: { text: 'ts' } });
    expect(p!.pipeline[3]).toMatchObject({ high: { above: 80, clearBelow: 75 }, low: null, timeField: null });
    expect(parseStreamsConfig(proc([{ window }]))[0]!.pipeline[0]).toMatchObject({ sizeMs: 60_000, advanceMs: 60_000, graceMs: 0, aggregates: ['count', 'min', 'max', 'mean', 'p95'] });
    expect(Object.isFrozen(p!.pipeline[2])).toBe(true);
    expect(parseStreamsConfig([])).toEqual([]);
  });

  it.each([
    ['not a list', { name: 'p' }, /config key 'streams' must be a list of at most 32 stream processors/],
    ['an unknown processor key', [{ name: 'p', from: 'a', to: 'b', pipeline: [{ window }], form: 'x' }], /'streams\[0\]\.form' is not known: allowed in streams\[0\] are name, from, to, pipeline, maxOpenWindows/],
    ['a bad name', [{ name: 'a b', from: 'a', to: 'b', pipeline: [{ window }] }], /'streams\[0\]\.name' must be 1 to 241 of a-z A-Z 0-9 \. _ - \(it also names the consumer group and state store 'streams\.<name>'\), got "a b"/],
    ['two processors with one name', [...proc([{ window }]), ...proc([{ window }])], /'streams\[1\]\.name' 'p' names a second processor/],
    ['no input', [{ name: 'p', from: [], to: 'b', pipeline: [{ window }] }], /'streams\[0\]\.from' must be a topic name or a list of 1 to 16 topic names/],
    ['a bad input topic', [{ name: 'p', from: ['ok', 'no/slash'], to: 'b', pipeline: [{ window }] }], /'streams\[0\]\.from\[1\]' must be a topic name \(1 to 249 of a-z A-Z 0-9 \. _ -, not '\.' or '\.\.'\), got "no\/slash"/],
    ['output = input', [{ name: 'p', from: 'a', to: 'a', pipeline: [{ window }] }], /'streams\[0\]\.to' 'a' is also an input in streams\[0\]\.from: a processor reading its own output would loop forever/],
    ['an empty pipeline', proc([]), /'streams\[0\]\.pipeline' must be a list of 1 to 16 steps, each one of \{ filter: \.\.\. \}, \{ map: \.\.\. \}, \{ window: \.\.\. \}, \{ alert: \.\.\. \}/],
    ['a step with two kinds', proc([{ filter: {}, map: {} }]), /'streams\[0\]\.pipeline\[0\]' must have exactly one key, the step's kind \(filter, map, window, alert\), got filter, map/],
    ['an unknown step', proc([{ reduce: {} }]), /must have exactly one key, the step's kind \(filter, map, window, alert\), got reduce/],
    ['a filter op that does not exist', proc([{ filter: { field: 't', op: '=>', value: 1 } }]), /'streams\[0\]\.pipeline\[0\]\.filter\.op' must be one of '==', '!=', '<', '<=', '>', '>=', 'exists', got "=>"/],
    ['an ordering filter on a string', proc([{ filter: { field: 't', op: '>', value: '20' } }]), /'streams\[0\]\.pipeline\[0\]\.filter\.value' must be a number, got "20"/],
    ['a filter without a field', proc([{ filter: { op: '>', value: 1 } }]), /'streams\[0\]\.pipeline\[0\]\.filter\.field' must be a field name or dotted path/],
    ['a nested filter key typo', proc([{ filter: { all: [{ field: 't', op: '>', value: 1, vaule: 2 }] } }]), /'streams\[0\]\.pipeline\[0\]\.filter\.all\[0\]\.vaule' is not known: allowed in streams\[0\]\.pipeline\[0\]\.filter\.all\[0\] are field, op, value/],
    ['a map of nothing', proc([{ map: { fields: {} } }]), /'streams\[0\]\.pipeline\[0\]\.map\.fields' must map 1 to 64 fields, got 0/],
    ['a map with a bad scale', proc([{ map: { fields: { f: { from: 't', scale: 'x' } } } }]), /'streams\[0\]\.pipeline\[0\]\.map\.fields\.f\.scale' must be a number, got "x"/],
    ['a map source that is not a path', proc([{ map: { fields: { f: 'a..b' } } }]), /'streams\[0\]\.pipeline\[0\]\.map\.fields\.f' must be a field name or dotted path .*, or \$key \(the record key\) or \$timestamp/],
    ['a window without size', proc([{ window: { field: 't' } }]), /'streams\[0\]\.pipeline\[0\]\.window\.size' must be a duration like "500ms", "30s", "1m", "2h", "1d" or a whole number of milliseconds, got undefined/],
    ['a window size in words', proc([{ window: { size: '1 minute', field: 't' } }]), /window\.size' must be a duration like .*, got "1 minute"/],
    ['an advance above the size', proc([{ window: { size: '1m', advance: '2m', field: 't' } }]), /window\.advance' must be at most the window size \(60000 ms\)/],
    ['too many hops', proc([{ window: { size: '1h', advance: '1s', field: 't' } }]), /window\.advance' makes each record fall in 3600 windows: size \/ advance must be at most 60/],
    ['an unknown aggregate', proc([{ window: { ...window, aggregates: ['count', 'median'] } }]), /window\.aggregates' must be a list of distinct names from count, min, max, mean, p95, got \["count","median"\]/],
    ['a zero size', proc([{ window: { size: '0s', field: 't' } }]), /window\.size' must be from 1 ms to 30d, got "0s"/],
    ['too many open windows', proc([{ window }], { maxOpenWindows: 5000 }), /'streams\[0\]\.maxOpenWindows' must be an integer from 1 to 4000, got 5000/],
    ['an alert without a threshold', proc([{ alert: { name: 'a', field: 't' } }]), /'streams\[0\]\.pipeline\[0\]\.alert' needs a threshold: 'above' \(with 'clearBelow'\) for a high alert, 'below' \(with 'clearAbove'\) for a low one, or both/],
    ['a clear above the raise', proc([{ alert: { name: 'a', field: 't', above: 30, clearBelow: 31 } }]), /alert\.clearBelow' must be at most 'above' \(30\): the alert clears once the value falls back below it, got 31/],
    ['a low clear below its raise', proc([{ alert: { name: 'a', field: 't', below: 5, clearAbove: 4 } }]), /alert\.clearAbove' must be at least 'below' \(5\)/],
    ['a clear without its threshold', proc([{ alert: { name: 'a', field: 't', clearBelow: 3, below: 1 } }]), /alert\.clearBelow' needs 'above'/],
    ['crossed high and low thresholds', proc([{ alert: { name: 'a', field: 't', above: 10, below: 12 } }]), /alert\.below' must be under 'above' \(10\), got 12/],
  ])('refuses %s, naming the key, the problem and what is allowed', (_, raw, message) => {
    expect(refusal(raw)).toMatch(message);
  });
});
