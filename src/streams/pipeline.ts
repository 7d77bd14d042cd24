import { assert } from '../errors.js';
import type { StoredRecord } from '../log/record-codec.js';
import { MAX_STATE_PUTS, MAX_STATE_VALUE_BYTES, type StatePut } from '../log/state.js';
import { Aggregate, MAX_P95_VALUES } from './aggregates.js';
import { nextAlertLevel, type AlertLevel } from './alerts.js';
import { MAX_WINDOWS_PER_RECORD, type AlertStep, type Step, type WindowStep } from './config.js';
import { getField, parseJsonObject, type JsonObject } from './json-fields.js';
import {
  alertKey,
  decodeRecordKey,
  encodeRecordKey,
  META_KEY,
  parseStateKey,
  positionKey,
  splitPartitionId,
  windowKey,
} from './state-keys.js';
import { applyMap, matches } from './transforms.js';
import { closesAt, eventTimeOf, isClosed, windowStartsFor } from './windows.js';

/**
 * A processor's pipeline and all of its state: open windows, raised alerts, per input partition
 * the offset its state matches and the stream time of each window step, and the counters.
 *
 * Records go through `process()` one at a time, and the state they change is marked dirty;
 * `takeWrite()` turns the dirty state into the puts of the one transaction that also appends the
 * output and commits the input offsets. State changes only in memory until that transaction, so
 * when it fails the processor reloads everything from the store (`load()`), exactly as after a
 * crash. Everything is deterministic per input partition: the same records in the same order
 * give the same output and state, however they were batched.
 */

/** Why a record (or an item a step made from it) was skipped; each kind is counted in stats. */
export type RecordErrorKind =
  | 'notJson'
  | 'missingField'
  | 'notNumber'
  | 'badTime'
  | 'badKey'
  | 'windowLimit'
  | 'alertLimit'
  | 'outputTooLarge'
  | 'overflow'
  | 'corruptRecord';

/** Counters kept in the state store with the state, so they are exact across restarts too. */
export interface PipelineCounters {
  /** Input records processed (including those skipped). */
  read: number;
  /** Records written to the output topic. */
  emitted: number;
  /** Items a filter dropped. */
  filtered: number;
  /** Records that arrived for a window that had already closed (dropped from that window). */
  late: number;
  /** Windows emitted with p95 null: more values than the exact p95 keeps (aggregates.ts). */
  p95Inexact: number;
  /** Input records deleted by retention before the processor read them. */
  skippedByRetention: number;
  errors: Partial<Record<RecordErrorKind, number>>;
}

/** What a step passes on: a JSON payload with its key and timestamp. */
export interface Item {
  key: string | Buffer | null;
  keyEnc: string;
  payload: JsonObject;
  timestamp: number;
}

/** A late record, a p95 past the exact range, or a record error: the processor logs the first of each kind. */
export interface Problem {
  kind: RecordErrorKind | 'late' | 'p95Inexact';
  detail: string;
  pk: string;
  offset: number;
}

/** What load() found that no longer fits: its state is dropped (and deleted by the next write). */
export interface LoadReport {
  fingerprintChanged: boolean;
  droppedWindows: number;
  droppedAlerts: number;
  droppedPartitions: string[];
}

/** One transaction's state bytes, soft (checked before each record) and hard (after it); well under the log's pending-bytes bound. */
export const STATE_BYTES_SOFT_MAX = 8 * 1024 * 1024;
export const STATE_BYTES_HARD_MAX = 32 * 1024 * 1024;
/** Raised alerts held at once by one processor (memory): ~100 bytes each. */
export const MAX_RAISED_ALERTS = 100_000;
/** Room kept in each write for the meta and position entries. */
const PUTS_RESERVE = 64;

interface OpenWindow {
  start: number;
  key: string | Buffer | null;
  keyEnc: string;
  agg: Aggregate;
}

interface WindowPartition {
  windows: Map<string, OpenWindow>;
  /** The earliest stream time at which one of `windows` closes: below it nothing needs a scan. */
  nextCloseAt: number;
}

interface AlertPartition {
  levels: Map<string, AlertLevel>;
  /** Bytes of its JSON entry: bounded by the store's value limit. */
  bytes: number;
}

interface StoredPosition {
  offset: number;
  clocks: (number | null)[];
}

interface StoredMeta {
  fingerprint: string;
  counters: PipelineCounters;
}

function emptyCounters(): PipelineCounters {
  return { read: 0, emitted: 0, filtered: 0, late: 0, p95Inexact: 0, skippedByRetention: 0, errors: {} };
}

export class Pipeline {
  readonly fingerprint: string;
  counters: PipelineCounters = emptyCounters();
  private positions = new Map<string, number>();
  private clocks = new Map<string, number[]>();
  private windows: (Map<string, WindowPartition> | null)[] = [];
  private alerts: (Map<string, AlertPartition> | null)[] = [];
  private open = 0;
  private raised = 0;
  private readonly dirty = new Map<string, () => Uint8Array | null>();
  private dirtyBytes = 0;
  private readonly windowSteps: number;
  private readonly alertSteps: number;
  /** Whether a step keeps state by record key (then the key must fit a state key). */
  private readonly keyed: boolean;
  private current = { pk: '', offset: 0 };

  constructor(
    private readonly steps: readonly Step[],
    private readonly maxOpenWindows: number,
    private readonly onProblem: (problem: Problem) => void,
  ) {
    this.fingerprint = JSON.stringify(steps);
    this.windowSteps = steps.filter((s) => s.kind === 'window').length;
    this.alertSteps = steps.filter((s) => s.kind === 'alert').length;
    this.keyed = this.windowSteps + this.alertSteps > 0;
    this.reset();
  }

  private reset(): void {
    this.counters = emptyCounters();
    this.positions = new Map();
    this.clocks = new Map();
    this.windows = this.steps.map((s) => (s.kind === 'window' ? new Map() : null));
    this.alerts = this.steps.map((s) => (s.kind === 'alert' ? new Map() : null));
    this.open = 0;
    this.raised = 0;
    this.dirty.clear();
    this.dirtyBytes = 0;
  }

  get openWindows(): number {
    return this.open;
  }

  get raisedAlerts(): number {
    return this.raised;
  }

  /** The offset the state of `pk` matches, as last written; undefined when it has none. */
  position(pk: string): number | undefined {
    return this.positions.get(pk);
  }

  /** Input partitions with stored state. */
  partitions(): string[] {
    return [...this.positions.keys()];
  }

  // ---------------------------------------------------------------- processing

  /** Runs one input record of partition `pk` through the pipeline; returns the items to write. */
  process(pk: string, record: StoredRecord): Item[] {
    this.current = { pk, offset: record.offset };
    this.counters.read++;
    this.setPosition(pk, record.offset + 1);
    const payload = parseJsonObject(record.value);
    if (payload === undefined) return this.fail('notJson', `the value is not a JSON object (${record.value.length} bytes)`);
    const keyEnc = this.keyed ? encodeRecordKey(record.key) : '';
    if (keyEnc === undefined) return this.fail('badKey', 'the record key is too long for a state key (or holds U+FFFF)');
    let items: Item[] = [{ key: record.key, keyEnc, payload, timestamp: record.timestamp }];
    for (let i = 0; i < this.steps.length && items.length > 0; i++) {
      const next: Item[] = [];
      for (const item of items) this.runStep(i, pk, item, next);
      items = next;
    }
    return items;
  }

  /** Records that the record at the current position was skipped for `kind` (a corrupt record, an overflow). */
  skip(pk: string, offset: number, kind: RecordErrorKind, detail: string): void {
    this.current = { pk, offset };
    this.counters.read++;
    this.setPosition(pk, offset + 1);
    this.fail(kind, detail);
  }

  /** Counts an error found after the pipeline ran (an output too large for the output topic). */
  countError(kind: RecordErrorKind, detail: string): void {
    this.fail(kind, detail);
  }

  /** Moves the position of `pk` without processing (records deleted by retention). */
  skipDeleted(pk: string, from: number, to: number): void {
    this.counters.skippedByRetention += to - from;
    this.setPosition(pk, to);
  }

  private runStep(i: number, pk: string, item: Item, out: Item[]): void {
    const step = this.steps[i]!;
    switch (step.kind) {
      case 'filter':
        if (matches(step.where, item.payload)) out.push(item);
        else this.counters.filtered++;
        return;
      case 'map': {
        const mapped = applyMap(step, item.payload, item.key, item.timestamp);
        if ('failure' in mapped) this.fail(mapped.failure.kind, mapped.failure.detail);
        else out.push({ ...item, payload: mapped.payload });
        return;
      }
      case 'window':
        this.windowStep(i, step, pk, item, out);
        return;
      case 'alert':
        this.alertStep(i, step, pk, item, out);
        return;
    }
  }

  private fail(kind: RecordErrorKind, detail: string): Item[] {
    this.counters.errors[kind] = (this.counters.errors[kind] ?? 0) + 1;
    this.onProblem({ kind, detail, ...this.current });
    return [];
  }

  /** A number at `field`, or undefined after counting the error. */
  private numberAt(payload: JsonObject, field: WindowStep['field'], what: string): number | undefined {
    const v = getField(payload, field);
    if (v === undefined) return void this.fail('missingField', `${what}: the payload has no field '${field.text}'`);
    if (typeof v !== 'number' || !Number.isFinite(v)) return void this.fail('notNumber', `${what}: field '${field.text}' must be a number, got ${typeof v}`);
    return v;
  }

  /** The event time of `item` for a step, or undefined after counting the error. */
  private timeOf(step: WindowStep | AlertStep, item: Item): number | undefined {
    if (step.timeField === null) return item.timestamp;
    const raw = getField(item.payload, step.timeField);
    if (raw === undefined) return void this.fail('missingField', `${step.kind}: the payload has no time field '${step.timeField.text}'`);
    const t = eventTimeOf(raw);
    if (t === undefined) return void this.fail('badTime', `${step.kind}: time field '${step.timeField.text}' must be ms since the epoch or an ISO 8601 time, got ${JSON.stringify(raw)?.slice(0, 40)}`);
    return t;
  }

  private windowStep(i: number, step: WindowStep, pk: string, item: Item, out: Item[]): void {
    const t = this.timeOf(step, item);
    if (t === undefined) return;
    const v = this.numberAt(item.payload, step.field, 'window');
    if (v === undefined) return;
    const parts = this.windows[i]!;
    let part = parts.get(pk);
    if (!part) parts.set(pk, (part = { windows: new Map(), nextCloseAt: Number.POSITIVE_INFINITY }));
    const clocks = this.clocksOf(pk);
    const clock = Math.max(clocks[i]!, t);
    clocks[i] = clock;
    // Close before adding: windows that end at or before this record's time are emitted first,
    // so one record never closes a window it has just opened.
    this.closeWindows(i, step, pk, part, clock, out);
    let late = false;
    let limited = false;
    for (const start of windowStartsFor(t, step)) {
      if (isClosed(start, clock, step)) {
        late = true;
        continue;
      }
      const id = `${start}|${item.keyEnc}`;
      let w = part.windows.get(id);
      if (!w) {
        if (this.open >= this.maxOpenWindows) {
          limited = true;
          continue;
        }
        w = { start, key: item.key, keyEnc: item.keyEnc, agg: new Aggregate(step.aggregates.includes('p95')) };
        part.windows.set(id, w);
        this.open++;
        part.nextCloseAt = Math.min(part.nextCloseAt, closesAt(start, step));
      }
      w.agg.add(v);
      this.markWindow(i, pk, w);
    }
    if (late) {
      this.counters.late++;
      this.onProblem({ kind: 'late', detail: `event time ${t} is older than stream time ${clock} less grace ${step.graceMs} ms: its window has been emitted`, ...this.current });
    }
    if (limited) this.fail('windowLimit', `a window would open past maxOpenWindows (${this.maxOpenWindows}); the record was left out of it`);
  }

  private closeWindows(i: number, step: WindowStep, pk: string, part: WindowPartition, clock: number, out: Item[]): void {
    if (clock < part.nextCloseAt) return;
    const closed: OpenWindow[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (const w of part.windows.values()) {
      if (isClosed(w.start, clock, step)) closed.push(w);
      else next = Math.min(next, closesAt(w.start, step));
    }
    part.nextCloseAt = next;
    // A fixed order (window start, then key) so the output does not depend on insertion order.
    closed.sort((a, b) => a.start - b.start || (a.keyEnc < b.keyEnc ? -1 : a.keyEnc > b.keyEnc ? 1 : 0));
    for (const w of closed) {
      part.windows.delete(`${w.start}|${w.keyEnc}`);
      this.open--;
      this.markDeleted(windowKey(i, pk, w.start, w.keyEnc));
      const result = w.agg.result(step.aggregates);
      if (step.aggregates.includes('p95') && result.p95 === null) {
        this.counters.p95Inexact++;
        this.onProblem({ kind: 'p95Inexact', detail: `a window of ${w.agg.count} values is past the ${MAX_P95_VALUES} largest kept for an exact p95: p95 is null`, ...this.current });
      }
      const payload: JsonObject = { key: keyText(w.key), field: step.field.text, windowStart: w.start, windowEnd: w.start + step.sizeMs, ...result };
      out.push({ key: w.key, keyEnc: w.keyEnc, payload, timestamp: w.start + step.sizeMs });
    }
  }

  private alertStep(i: number, step: AlertStep, pk: string, item: Item, out: Item[]): void {
    const v = this.numberAt(item.payload, step.field, 'alert');
    if (v === undefined) return;
    const at = this.timeOf(step, item);
    if (at === undefined) return;
    const parts = this.alerts[i]!;
    let part = parts.get(pk);
    if (!part) parts.set(pk, (part = { levels: new Map(), bytes: 2 }));
    const previous = part.levels.get(item.keyEnc) ?? 'ok';
    const change = nextAlertLevel(previous, v, step);
    if (change === null) return;
    const entryBytes = Buffer.byteLength(JSON.stringify(item.keyEnc)) + 10;
    if (change.level === 'ok') {
      part.levels.delete(item.keyEnc);
      part.bytes -= entryBytes;
      this.raised--;
    } else if (previous === 'ok') {
      if (this.raised >= MAX_RAISED_ALERTS || part.bytes + entryBytes > MAX_STATE_VALUE_BYTES) {
        this.fail('alertLimit', `alert '${step.name}' would raise past ${MAX_RAISED_ALERTS} raised alerts or 1 MiB of raised keys in one partition; it was not raised`);
        return;
      }
      part.levels.set(item.keyEnc, change.level);
      part.bytes += entryBytes;
      this.raised++;
    } else {
      part.levels.set(item.keyEnc, change.level);
    }
    this.markAlerts(i, pk, part);
    const payload: JsonObject = { alert: step.name, key: keyText(item.key), state: change.level, previous, field: step.field.text, value: v, threshold: change.threshold, at };
    out.push({ key: item.key, keyEnc: item.keyEnc, payload, timestamp: item.timestamp });
  }

  private clocksOf(pk: string): number[] {
    let clocks = this.clocks.get(pk);
    if (!clocks) this.clocks.set(pk, (clocks = this.steps.map(() => Number.NEGATIVE_INFINITY)));
    return clocks;
  }

  // ---------------------------------------------------------------- the write

  private setPosition(pk: string, offset: number): void {
    this.positions.set(pk, offset);
    const key = positionKey(pk);
    if (!this.dirty.has(key)) this.dirtyBytes += 64 + 16 * this.steps.length;
    this.dirty.set(key, () => {
      const clocks = this.clocks.get(pk) ?? [];
      const value: StoredPosition = { offset: this.positions.get(pk)!, clocks: clocks.map((c) => (Number.isFinite(c) ? c : null)) };
      return Buffer.from(JSON.stringify(value));
    });
  }

  private markWindow(i: number, pk: string, w: OpenWindow): void {
    const key = windowKey(i, pk, w.start, w.keyEnc);
    // Counted at its largest size, so the soft bound holds however the window grows in this batch.
    if (!this.dirty.has(key)) this.dirtyBytes += key.length + 8 * (5 + MAX_P95_VALUES);
    this.dirty.set(key, () => w.agg.encode());
  }

  private markDeleted(key: string): void {
    if (!this.dirty.has(key)) this.dirtyBytes += key.length;
    this.dirty.set(key, () => null);
  }

  private markAlerts(i: number, pk: string, part: AlertPartition): void {
    const key = alertKey(i, pk);
    if (!this.dirty.has(key)) this.dirtyBytes += MAX_STATE_VALUE_BYTES > part.bytes * 2 ? part.bytes * 2 : MAX_STATE_VALUE_BYTES;
    this.dirty.set(key, () => (part.levels.size === 0 ? null : Buffer.from(JSON.stringify([...part.levels]))));
  }

  /**
   * Whether one more record surely fits this transaction: the log takes at most MAX_STATE_PUTS
   * puts in one write, and a record can close every open window (and touch up to
   * MAX_WINDOWS_PER_RECORD per window step).
   */
  canTake(): boolean {
    const worstPuts = 2 * this.open + MAX_WINDOWS_PER_RECORD * this.windowSteps + this.alertSteps + 2;
    return this.dirty.size + worstPuts + PUTS_RESERVE <= MAX_STATE_PUTS && this.dirtyBytes < STATE_BYTES_SOFT_MAX;
  }

  /** Whether the dirty state no longer fits one transaction (then the last record must be undone). */
  overLimits(): boolean {
    return this.dirty.size + 1 > MAX_STATE_PUTS || this.dirtyBytes > STATE_BYTES_HARD_MAX;
  }

  /** Whether anything changed since the last write. */
  get hasChanges(): boolean {
    return this.dirty.size > 0;
  }

  /**
   * The puts for the changed state and the counters, in writes of at most `maxPuts` (the last
   * one holds the meta entry); clears the dirty set. A normal batch fits one write (canTake).
   */
  takeWrites(maxPuts = MAX_STATE_PUTS): StatePut[][] {
    const puts: StatePut[] = [...this.dirty].map(([key, encode]) => ({ key, value: encode() }));
    const meta: StoredMeta = { fingerprint: this.fingerprint, counters: this.counters };
    puts.push({ key: META_KEY, value: Buffer.from(JSON.stringify(meta)) });
    this.dirty.clear();
    this.dirtyBytes = 0;
    const writes: StatePut[][] = [];
    for (let i = 0; i < puts.length; i += maxPuts) writes.push(puts.slice(i, i + maxPuts));
    return writes;
  }

  // ---------------------------------------------------------------- load

  /**
   * Replaces all state with the store's. State written under another pipeline (the config's
   * steps changed) or for a topic no longer in `from` is dropped and marked for deletion.
   */
  load(meta: Buffer | undefined, entries: Iterable<{ key: string; value: Buffer }>, fromTopics: ReadonlySet<string>): LoadReport {
    this.reset();
    const report: LoadReport = { fingerprintChanged: false, droppedWindows: 0, droppedAlerts: 0, droppedPartitions: [] };
    let sameSteps = true;
    if (meta !== undefined) {
      const m = JSON.parse(meta.toString()) as StoredMeta;
      this.counters = { ...emptyCounters(), ...m.counters, errors: { ...m.counters.errors } };
      sameSteps = m.fingerprint === this.fingerprint;
      report.fingerprintChanged = !sameSteps;
    }
    const dropped = new Set<string>();
    for (const { key, value } of entries) {
      const k = parseStateKey(key);
      if (k.kind === 'meta') continue;
      if (k.kind === 'unknown') {
        this.markDeleted(key);
        continue;
      }
      const keepPartition = fromTopics.has(splitPartitionId(k.pk).topic);
      if (!keepPartition) dropped.add(k.pk);
      if (k.kind === 'position') {
        const p = JSON.parse(value.toString()) as StoredPosition;
        assert(Number.isSafeInteger(p.offset) && p.offset >= 0, `state position of ${k.pk} is ${p.offset}`);
        if (!keepPartition) this.markDeleted(key);
        else {
          this.positions.set(k.pk, p.offset);
          if (sameSteps) this.clocks.set(k.pk, this.steps.map((_, i) => p.clocks[i] ?? Number.NEGATIVE_INFINITY));
          else this.setPosition(k.pk, p.offset); // rewritten without the old steps' clocks
        }
      } else if (k.kind === 'window') {
        const step = this.steps[k.step];
        if (!sameSteps || !keepPartition || step?.kind !== 'window') {
          report.droppedWindows++;
          this.markDeleted(key);
          continue;
        }
        const part = this.windowPartition(k.step, k.pk);
        part.windows.set(`${k.start}|${k.keyEnc}`, { start: k.start, key: decodeRecordKey(k.keyEnc), keyEnc: k.keyEnc, agg: Aggregate.decode(value) });
        part.nextCloseAt = Math.min(part.nextCloseAt, closesAt(k.start, step));
        this.open++;
      } else {
        const step = this.steps[k.step];
        const levels = JSON.parse(value.toString()) as [string, AlertLevel][];
        if (!sameSteps || !keepPartition || step?.kind !== 'alert') {
          report.droppedAlerts += levels.length;
          this.markDeleted(key);
          continue;
        }
        const part: AlertPartition = { levels: new Map(levels), bytes: 2 + levels.reduce((sum, [keyEnc]) => sum + Buffer.byteLength(JSON.stringify(keyEnc)) + 10, 0) };
        this.alerts[k.step]!.set(k.pk, part);
        this.raised += levels.length;
      }
    }
    report.droppedPartitions = [...dropped];
    return report;
  }

  private windowPartition(i: number, pk: string): WindowPartition {
    const parts = this.windows[i]!;
    let part = parts.get(pk);
    if (!part) parts.set(pk, (part = { windows: new Map(), nextCloseAt: Number.POSITIVE_INFINITY }));
    return part;
  }

  /**
   * Drops all state of one input partition (its group offset moved outside the processor, or
   * its topic was created again) and marks it for deletion; returns what was dropped.
   */
  dropPartition(pk: string): { windows: number; alerts: number } {
    let windows = 0;
    let alerts = 0;
    this.windows.forEach((parts, i) => {
      const part = parts?.get(pk);
      if (!part) return;
      for (const w of part.windows.values()) this.markDeleted(windowKey(i, pk, w.start, w.keyEnc));
      windows += part.windows.size;
      this.open -= part.windows.size;
      parts!.delete(pk);
    });
    this.alerts.forEach((parts, i) => {
      const part = parts?.get(pk);
      if (!part) return;
      this.markDeleted(alertKey(i, pk));
      alerts += part.levels.size;
      this.raised -= part.levels.size;
      parts!.delete(pk);
    });
    this.clocks.delete(pk);
    if (this.positions.delete(pk)) this.markDeleted(positionKey(pk));
    return { windows, alerts };
  }
}

/** The record key as it appears in emitted payloads: a string, base64 for bytes, or null. */
function keyText(key: string | Buffer | null): string | null {
  return key === null ? null : typeof key === 'string' ? key : key.toString('base64');
}
