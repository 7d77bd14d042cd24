/**
 * Fields of a JSON payload named by a dotted path ("temperature", "env.temperature"). Paths are
 * checked once when the config is read, so reading one is a plain walk with no parsing.
 */

/** A decoded JSON object payload. */
export type JsonObject = Record<string, unknown>;

/** A field path: its dotted form (for messages) and its segments. */
export interface FieldPath {
  readonly text: string;
  readonly segments: readonly string[];
}

/** Paths travel in log lines and state keys: a bound on their length. */
export const MAX_FIELD_PATH_CHARS = 256;
export const FIELD_PATH_RULE = `a field name or dotted path like "temperature" or "env.temperature" (at most ${MAX_FIELD_PATH_CHARS} characters, no empty segments)`;

/** The path, or undefined when `text` is not a valid one. */
export function parseFieldPath(text: unknown): FieldPath | undefined {
  if (typeof text !== 'string' || text === '' || text.length > MAX_FIELD_PATH_CHARS) return undefined;
  const segments = text.split('.');
  if (segments.some((s) => s === '')) return undefined;
  return { text, segments };
}

/** The value at `path`, or undefined when a segment is missing or crosses a non-object. */
export function getField(value: JsonObject, path: FieldPath): unknown {
  let node: unknown = value;
  for (const segment of path.segments) {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined;
    if (!Object.hasOwn(node, segment)) return undefined;
    node = (node as JsonObject)[segment];
  }
  return node;
}

/** Parses a payload as a JSON object; undefined when it is not JSON or not an object. */
export function parseJsonObject(payload: Buffer): JsonObject | undefined {
  // A payload that does not start with '{' cannot be an object: skip the parse (edgebin, text).
  let i = 0;
  while (i < payload.length && (payload[i] === 0x20 || payload[i] === 0x0a || payload[i] === 0x0d || payload[i] === 0x09)) i++;
  if (payload[i] !== 0x7b) return undefined;
  try {
    const parsed: unknown = JSON.parse(payload.toString('utf8'));
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as JsonObject) : undefined;
  } catch {
    return undefined;
  }
}
