import type { Condition, MapStep } from './config.js';
import { getField, type JsonObject } from './json-fields.js';

/**
 * The stateless steps (pure): filter conditions and field mapping. A comparison with a field
 * that is missing, or of another type than the operator needs, is false (a filter drops such a
 * record and the processor counts it as filtered; it is not an error), except `!=`, which is
 * always the opposite of `==`.
 */

export function matches(cond: Condition, payload: JsonObject): boolean {
  if ('all' in cond) return cond.all.every((c) => matches(c, payload));
  if ('any' in cond) return cond.any.some((c) => matches(c, payload));
  const v = getField(payload, cond.field);
  if (v === undefined) return cond.op === '!=';
  switch (cond.op) {
    case 'exists':
      return true;
    case '==':
      return v === cond.value;
    case '!=':
      return v !== cond.value;
    default: {
      if (typeof v !== 'number' || typeof cond.value !== 'number') return false;
      if (cond.op === '<') return v < cond.value;
      if (cond.op === '<=') return v <= cond.value;
      if (cond.op === '>') return v > cond.value;
      return v >= cond.value;
    }
  }
}

/** Why a record could not be mapped: the kind (counted in stats) and a detail for the log. */
export interface StepFailure {
  kind: 'missingField' | 'notNumber';
  detail: string;
}

/** The mapped payload, or the failure when a source field is missing or not a number where one is needed. */
export function applyMap(step: MapStep, payload: JsonObject, key: string | Buffer | null, timestamp: number): { payload: JsonObject } | { failure: StepFailure } {
  const out: JsonObject = step.keep ? { ...payload } : {};
  for (const f of step.fields) {
    let v: unknown;
    let from: string;
    if ('special' in f.source) {
      from = f.source.special;
      v = f.source.special === '$timestamp' ? timestamp : typeof key === 'string' ? key : key === null ? null : key.toString('base64');
    } else {
      from = f.source.field.text;
      v = getField(payload, f.source.field);
      if (v === undefined) return { failure: { kind: 'missingField', detail: `map: the payload has no field '${from}'` } };
    }
    const converts = f.scale !== 1 || f.offset !== 0 || f.decimals !== null;
    if (converts) {
      if (typeof v !== 'number' || !Number.isFinite(v)) return { failure: { kind: 'notNumber', detail: `map: field '${from}' must be a number to convert, got ${typeof v}` } };
      let n = v * f.scale + f.offset;
      if (f.decimals !== null) n = Number(n.toFixed(f.decimals));
      v = n;
    }
    out[f.name] = v;
  }
  return { payload: out };
}
