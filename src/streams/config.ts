import { EdgelogError } from '../errors.js';
import { GROUP_ID_PATTERN } from '../log/offsets.js';
import { describe as describeValue } from '../log/topic-config.js';
import { DURATION_RULE, parseDurationMs } from './duration.js';
import { FIELD_PATH_RULE, parseFieldPath, type FieldPath } from './json-fields.js';

/**
 * The `streams:` section of the gateway config: stream processors, each reading topics, running
 * a pipeline of steps and writing one topic (docs/streams.md). Parsed and checked here, once;
 * every refusal names the key path, what was wrong and what is allowed (like src/config.ts).
 */

/** A comparison in a filter. Ordering operators compare numbers only. */
export type CompareOp = '==' | '!=' | '<' | '<=' | '>' | '>=' | 'exists';
export const COMPARE_OPS: readonly CompareOp[] = ['==', '!=', '<', '<=', '>', '>=', 'exists'];

export type JsonScalar = string | number | boolean | null;

export type Condition =
  | { readonly field: FieldPath; readonly op: CompareOp; readonly value: JsonScalar }
  | { readonly all: readonly Condition[] }
  | { readonly any: readonly Condition[] };

export interface FilterStep {
  readonly kind: 'filter';
  readonly where: Condition;
}

/** Where a mapped field comes from: a payload field, the record key or the record timestamp. */
export type MapSource = { readonly field: FieldPath } | { readonly special: '$key' | '$timestamp' };

export interface MapField {
  readonly name: string;
  readonly source: MapSource;
  /** value × scale + offset (a unit conversion: °C → °F is scale 1.8, offset 32); only for numbers. */
  readonly scale: number;
  readonly offset: number;
  /** Round to this many decimals after scaling; null to leave the number as computed. */
  readonly decimals: number | null;
}

export interface MapStep {
  readonly kind: 'map';
  readonly fields: readonly MapField[];
  /** Keep the payload's other fields (true) or output only the mapped ones (false, the default). */
  readonly keep: boolean;
}

export type AggregateName = 'count' | 'min' | 'max' | 'mean' | 'p95';
export const AGGREGATES: readonly AggregateName[] = ['count', 'min', 'max', 'mean', 'p95'];

export interface WindowStep {
  readonly kind: 'window';
  readonly sizeMs: number;
  /** Equal to sizeMs for tumbling windows, smaller for hopping ones. */
  readonly advanceMs: number;
  /** How long after a window's end records for it are still taken. */
  readonly graceMs: number;
  /** The numeric field aggregated. */
  readonly field: FieldPath;
  readonly aggregates: readonly AggregateName[];
  /** The payload field holding the event time (ms since the epoch or ISO 8601); null for the record's timestamp. */
  readonly timeField: FieldPath | null;
}

export interface AlertStep {
  readonly kind: 'alert';
  /** Names the alert in its records. */
  readonly name: string;
  readonly field: FieldPath;
  /** Raise 'high' when the value goes above `above`; clear it when the value goes below `clearBelow`. */
  readonly high: { readonly above: number; readonly clearBelow: number } | null;
  /** Raise 'low' when the value goes below `below`; clear it when the value goes above `clearAbove`. */
  readonly low: { readonly below: number; readonly clearAbove: number } | null;
  /** The payload field holding the event time reported in alert records; null for the record's timestamp. */
  readonly timeField: FieldPath | null;
}

export type Step = FilterStep | MapStep | WindowStep | AlertStep;
export type StepKind = Step['kind'];
const STEP_KINDS: readonly StepKind[] = ['filter', 'map', 'window', 'alert'];

export interface StreamProcessorConfig {
  /** Names the processor; its consumer group and its state store are `streams.<name>`. */
  readonly name: string;
  readonly from: readonly string[];
  readonly to: string;
  readonly pipeline: readonly Step[];
  /** Open windows of all its window steps at once (memory and one transaction's work). */
  readonly maxOpenWindows: number;
}

/** The prefix of a processor's consumer group and state store. */
export const STREAMS_GROUP_PREFIX = 'streams.';
/** Processors in one gateway: each is a loop, a group member and a state store. */
export const MAX_PROCESSORS = 32;
export const MAX_FROM_TOPICS = 16;
export const MAX_PIPELINE_STEPS = 16;
/** Conditions in one filter (all nesting levels together) and nesting depth: a bound on per-record work. */
export const MAX_FILTER_CONDITIONS = 32;
export const MAX_FILTER_DEPTH = 4;
export const MAX_MAP_FIELDS = 64;
/** size / advance: each record updates this many windows at most, which bounds its work and state writes. */
export const MAX_WINDOWS_PER_RECORD = 60;
/** The longest window, advance or grace (30 days): a window's state waits that long in memory. */
export const MAX_WINDOW_MS = 30 * 86_400_000;
/**
 * Every window that closes at one event time is emitted, and its state deleted, in one
 * transaction, and the log takes at most 10,000 records and 10,000 state writes per transaction:
 * 4,000 open windows (plus the windows one record touches) always fit. At 8 KiB per window with
 * p95 (MAX_P95_VALUES), also the memory bound of one processor's windows: about 32 MiB.
 */
export const MAX_OPEN_WINDOWS_LIMIT = 4000;
export const DEFAULT_MAX_OPEN_WINDOWS = MAX_OPEN_WINDOWS_LIMIT;
/** Processor and alert names: the group id's characters; `streams.` + name must be a group id. */
const NAME_RULE = `1 to ${249 - STREAMS_GROUP_PREFIX.length} of a-z A-Z 0-9 . _ -`;
const MAP_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

type Tree = Record<string, unknown>;

function refuse(path: string, message: string): never {
  throw new EdgelogError('INVALID_CONFIG', `config key '${path}' ${message}`);
}

function isTree(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Refuses keys of `node` outside `allowed`, naming them and what is allowed. */
function onlyKeys(path: string, node: Tree, allowed: readonly string[]): void {
  for (const key of Object.keys(node)) {
    if (!allowed.includes(key)) refuse(`${path}.${key}`, `is not known: allowed in ${path} are ${allowed.join(', ')}`);
  }
}

function tree(path: string, v: unknown, shape: string): Tree {
  if (!isTree(v)) refuse(path, `must be a mapping ${shape}, got ${describeValue(v)}`);
  return v;
}

function topicName(path: string, v: unknown): string {
  if (typeof v !== 'string' || !TOPIC_NAME.test(v) || v === '.' || v === '..') {
    refuse(path, `must be a topic name (1 to 249 of a-z A-Z 0-9 . _ -, not '.' or '..'), got ${describeValue(v)}`);
  }
  return v;
}

function fieldPath(path: string, v: unknown): FieldPath {
  const parsed = parseFieldPath(v);
  if (!parsed) refuse(path, `must be ${FIELD_PATH_RULE}, got ${describeValue(v)}`);
  return parsed;
}

function finite(path: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) refuse(path, `must be a number, got ${describeValue(v)}`);
  return v;
}

function duration(path: string, v: unknown, minMs: number): number {
  const ms = parseDurationMs(v);
  if (ms === undefined) refuse(path, `must be ${DURATION_RULE}, got ${describeValue(v)}`);
  if (ms < minMs || ms > MAX_WINDOW_MS) refuse(path, `must be from ${minMs} ms to 30d, got ${describeValue(v)}`);
  return ms;
}

/**
 * Parses and checks the `streams:` list; returns it frozen. Throws INVALID_CONFIG naming the
 * first bad key (e.g. `streams[0].pipeline[1].window.size`), what was wrong and what is allowed.
 */
export function parseStreamsConfig(raw: unknown, path = 'streams'): readonly StreamProcessorConfig[] {
  if (!Array.isArray(raw) || raw.length > MAX_PROCESSORS) {
    refuse(path, `must be a list of at most ${MAX_PROCESSORS} stream processors { name, from, to, pipeline } ([] for none), got ${describeValue(raw)}`);
  }
  const processors = raw.map((p, i) => parseProcessor(`${path}[${i}]`, p));
  const names = new Set<string>();
  processors.forEach((p, i) => {
    if (names.has(p.name)) refuse(`${path}[${i}].name`, `'${p.name}' names a second processor: names must be unique (each is a consumer group and a state store)`);
    names.add(p.name);
  });
  return deepFreeze(processors);
}

function parseProcessor(path: string, raw: unknown): StreamProcessorConfig {
  const node = tree(path, raw, '{ name, from, to, pipeline, maxOpenWindows? }');
  onlyKeys(path, node, ['name', 'from', 'to', 'pipeline', 'maxOpenWindows']);
  const name = node['name'];
  if (typeof name !== 'string' || !GROUP_ID_PATTERN.test(name) || name.length > 249 - STREAMS_GROUP_PREFIX.length) {
    refuse(`${path}.name`, `must be ${NAME_RULE} (it also names the consumer group and state store '${STREAMS_GROUP_PREFIX}<name>'), got ${describeValue(name)}`);
  }
  const rawFrom = typeof node['from'] === 'string' ? [node['from']] : node['from'];
  if (!Array.isArray(rawFrom) || rawFrom.length === 0 || rawFrom.length > MAX_FROM_TOPICS) {
    refuse(`${path}.from`, `must be a topic name or a list of 1 to ${MAX_FROM_TOPICS} topic names, got ${describeValue(node['from'])}`);
  }
  const from = rawFrom.map((t, i) => topicName(`${path}.from[${i}]`, t));
  if (new Set(from).size !== from.length) refuse(`${path}.from`, `names a topic twice: list each input topic once`);
  const to = topicName(`${path}.to`, node['to']);
  if (from.includes(to)) refuse(`${path}.to`, `'${to}' is also an input in ${path}.from: a processor reading its own output would loop forever`);
  let maxOpenWindows = DEFAULT_MAX_OPEN_WINDOWS;
  if (node['maxOpenWindows'] !== undefined) {
    const v = node['maxOpenWindows'];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_OPEN_WINDOWS_LIMIT) {
      refuse(`${path}.maxOpenWindows`, `must be an integer from 1 to ${MAX_OPEN_WINDOWS_LIMIT}, got ${describeValue(v)}`);
    }
    maxOpenWindows = v;
  }
  const steps = node['pipeline'];
  if (!Array.isArray(steps) || steps.length === 0 || steps.length > MAX_PIPELINE_STEPS) {
    refuse(`${path}.pipeline`, `must be a list of 1 to ${MAX_PIPELINE_STEPS} steps, each one of ${STEP_KINDS.map((k) => `{ ${k}: ... }`).join(', ')}, got ${describeValue(steps)}`);
  }
  const pipeline = steps.map((s, i) => parseStep(`${path}.pipeline[${i}]`, s));
  return { name, from, to, pipeline, maxOpenWindows };
}

function parseStep(path: string, raw: unknown): Step {
  const node = tree(path, raw, `with one key: ${STEP_KINDS.join(', ')}`);
  const keys = Object.keys(node);
  if (keys.length !== 1 || !STEP_KINDS.includes(keys[0] as StepKind)) {
    refuse(path, `must have exactly one key, the step's kind (${STEP_KINDS.join(', ')}), got ${keys.length === 0 ? 'none' : keys.join(', ')}`);
  }
  const kind = keys[0] as StepKind;
  const at = `${path}.${kind}`;
  const body = node[kind];
  switch (kind) {
    case 'filter':
      return { kind, where: parseCondition(at, body, { count: 0 }, 1) };
    case 'map':
      return parseMap(at, body);
    case 'window':
      return parseWindow(at, body);
    case 'alert':
      return parseAlert(at, body);
  }
}

function parseCondition(path: string, raw: unknown, seen: { count: number }, depth: number): Condition {
  const node = tree(path, raw, `{ field, op, value } or { all: [conditions] } or { any: [conditions] }`);
  if (++seen.count > MAX_FILTER_CONDITIONS) refuse(path, `is one condition too many: a filter holds at most ${MAX_FILTER_CONDITIONS}`);
  for (const group of ['all', 'any'] as const) {
    if (!(group in node)) continue;
    onlyKeys(path, node, [group]);
    const list = node[group];
    if (!Array.isArray(list) || list.length === 0) refuse(`${path}.${group}`, `must be a non-empty list of conditions, got ${describeValue(list)}`);
    if (depth >= MAX_FILTER_DEPTH) refuse(`${path}.${group}`, `nests conditions too deep: at most ${MAX_FILTER_DEPTH} levels`);
    const parsed = list.map((c, i) => parseCondition(`${path}.${group}[${i}]`, c, seen, depth + 1));
    return group === 'all' ? { all: parsed } : { any: parsed };
  }
  onlyKeys(path, node, ['field', 'op', 'value']);
  const field = fieldPath(`${path}.field`, node['field']);
  const op = node['op'];
  if (typeof op !== 'string' || !COMPARE_OPS.includes(op as CompareOp)) {
    refuse(`${path}.op`, `must be one of ${COMPARE_OPS.map((o) => `'${o}'`).join(', ')}, got ${describeValue(op)}`);
  }
  const value = node['value'];
  if (op === 'exists') {
    if (value !== undefined) refuse(`${path}.value`, `must be left out for op 'exists'`);
    return { field, op, value: null };
  }
  if (op === '==' || op === '!=') {
    if (value === undefined || !(value === null || ['string', 'number', 'boolean'].includes(typeof value))) {
      refuse(`${path}.value`, `must be a string, number, boolean or null to compare with '${op}', got ${describeValue(value)}`);
    }
    return { field, op, value: value as JsonScalar };
  }
  return { field, op: op as CompareOp, value: finite(`${path}.value`, value) };
}

function parseMap(path: string, raw: unknown): MapStep {
  const node = tree(path, raw, '{ fields: { outputName: source }, keep? }');
  onlyKeys(path, node, ['fields', 'keep']);
  const keep = node['keep'] ?? false;
  if (typeof keep !== 'boolean') refuse(`${path}.keep`, `must be true (keep the payload's other fields) or false (only the mapped fields), got ${describeValue(keep)}`);
  const fields = tree(`${path}.fields`, node['fields'], '{ outputName: source, ... }');
  const entries = Object.entries(fields);
  if (entries.length === 0 || entries.length > MAX_MAP_FIELDS) refuse(`${path}.fields`, `must map 1 to ${MAX_MAP_FIELDS} fields, got ${entries.length}`);
  return {
    kind: 'map',
    keep,
    fields: entries.map(([name, spec]) => {
      const at = `${path}.fields.${name}`;
      if (!MAP_NAME.test(name)) refuse(at, `names an output field: use 1 to 64 of a-z A-Z 0-9 _ -`);
      if (typeof spec === 'string') return { name, source: mapSource(at, spec), scale: 1, offset: 0, decimals: null };
      const s = tree(at, spec, '{ from, scale?, offset?, decimals? } or a source: a field path, $key or $timestamp');
      onlyKeys(at, s, ['from', 'scale', 'offset', 'decimals']);
      const source = mapSource(`${at}.from`, s['from']);
      const scale = s['scale'] === undefined ? 1 : finite(`${at}.scale`, s['scale']);
      const offset = s['offset'] === undefined ? 0 : finite(`${at}.offset`, s['offset']);
      let decimals: number | null = null;
      if (s['decimals'] !== undefined) {
        const d = s['decimals'];
        if (typeof d !== 'number' || !Number.isInteger(d) || d < 0 || d > 15) refuse(`${at}.decimals`, `must be an integer from 0 to 15, got ${describeValue(d)}`);
        decimals = d;
      }
      return { name, source, scale, offset, decimals };
    }),
  };
}

function mapSource(path: string, v: unknown): MapSource {
  if (v === '$key' || v === '$timestamp') return { special: v };
  const field = parseFieldPath(v);
  if (!field) refuse(path, `must be ${FIELD_PATH_RULE}, or $key (the record key) or $timestamp (the record timestamp), got ${describeValue(v)}`);
  return { field };
}

function parseWindow(path: string, raw: unknown): WindowStep {
  const node = tree(path, raw, '{ size, advance?, grace?, field, aggregates?, timeField? }');
  onlyKeys(path, node, ['size', 'advance', 'grace', 'field', 'aggregates', 'timeField']);
  const sizeMs = duration(`${path}.size`, node['size'], 1);
  const advanceMs = node['advance'] === undefined ? sizeMs : duration(`${path}.advance`, node['advance'], 1);
  if (advanceMs > sizeMs) refuse(`${path}.advance`, `must be at most the window size (${sizeMs} ms): windows would leave gaps between them`);
  if (Math.ceil(sizeMs / advanceMs) > MAX_WINDOWS_PER_RECORD) {
    refuse(`${path}.advance`, `makes each record fall in ${Math.ceil(sizeMs / advanceMs)} windows: size / advance must be at most ${MAX_WINDOWS_PER_RECORD}`);
  }
  const graceMs = node['grace'] === undefined ? 0 : duration(`${path}.grace`, node['grace'], 0);
  const field = fieldPath(`${path}.field`, node['field']);
  let aggregates: AggregateName[] = [...AGGREGATES];
  if (node['aggregates'] !== undefined) {
    const list = node['aggregates'];
    if (!Array.isArray(list) || list.length === 0 || list.some((a) => !AGGREGATES.includes(a as AggregateName)) || new Set(list).size !== list.length) {
      refuse(`${path}.aggregates`, `must be a list of distinct names from ${AGGREGATES.join(', ')}, got ${Array.isArray(list) ? JSON.stringify(list) : describeValue(list)}`);
    }
    aggregates = AGGREGATES.filter((a) => list.includes(a));
  }
  const timeField = node['timeField'] === undefined ? null : fieldPath(`${path}.timeField`, node['timeField']);
  return { kind: 'window', sizeMs, advanceMs, graceMs, field, aggregates, timeField };
}

function parseAlert(path: string, raw: unknown): AlertStep {
  const node = tree(path, raw, '{ name, field, above?, clearBelow?, below?, clearAbove?, timeField? }');
  onlyKeys(path, node, ['name', 'field', 'above', 'clearBelow', 'below', 'clearAbove', 'timeField']);
  const name = node['name'];
  if (typeof name !== 'string' || !GROUP_ID_PATTERN.test(name)) refuse(`${path}.name`, `must be 1 to 249 of a-z A-Z 0-9 . _ -, got ${describeValue(name)}`);
  const field = fieldPath(`${path}.field`, node['field']);
  let high: AlertStep['high'] = null;
  let low: AlertStep['low'] = null;
  if (node['above'] !== undefined) {
    const above = finite(`${path}.above`, node['above']);
    const clearBelow = node['clearBelow'] === undefined ? above : finite(`${path}.clearBelow`, node['clearBelow']);
    if (clearBelow > above) refuse(`${path}.clearBelow`, `must be at most 'above' (${above}): the alert clears once the value falls back below it, got ${clearBelow}`);
    high = { above, clearBelow };
  } else if (node['clearBelow'] !== undefined) {
    refuse(`${path}.clearBelow`, `needs 'above': it is where a high alert clears`);
  }
  if (node['below'] !== undefined) {
    const below = finite(`${path}.below`, node['below']);
    const clearAbove = node['clearAbove'] === undefined ? below : finite(`${path}.clearAbove`, node['clearAbove']);
    if (clearAbove < below) refuse(`${path}.clearAbove`, `must be at least 'below' (${below}): the alert clears once the value rises back above it, got ${clearAbove}`);
    low = { below, clearAbove };
  } else if (node['clearAbove'] !== undefined) {
    refuse(`${path}.clearAbove`, `needs 'below': it is where a low alert clears`);
  }
  if (!high && !low) refuse(path, `needs a threshold: 'above' (with 'clearBelow') for a high alert, 'below' (with 'clearAbove') for a low one, or both`);
  if (high && low) {
    // Each alert must clear on the way to the other, so a jump from high to low passes through a clear.
    if (low.below >= high.above) refuse(`${path}.below`, `must be under 'above' (${high.above}), got ${low.below}`);
    if (high.clearBelow < low.below) refuse(`${path}.clearBelow`, `must be at least 'below' (${low.below}), got ${high.clearBelow}`);
    if (low.clearAbove > high.above) refuse(`${path}.clearAbove`, `must be at most 'above' (${high.above}), got ${low.clearAbove}`);
  }
  const timeField = node['timeField'] === undefined ? null : fieldPath(`${path}.timeField`, node['timeField']);
  return { kind: 'alert', name, field, high, low, timeField };
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
