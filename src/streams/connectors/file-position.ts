import type { BigIntStats } from 'node:fs';

/**
 * What a connector keeps in its state store (src/log/state.ts, store `connect.<name>`): the file
 * it works on, by identity (device and inode, so a rotated file is told from its successor at the
 * same path), and how far it got. Encoded as JSON with a version, so a later edgelog can read it.
 */

/** A file's identity: what stays the same across renames and differs between files. */
export interface FileIdentity {
  dev: bigint;
  ino: bigint;
}

/** The source's checkpoint: the first byte of `file` not yet in the topic. */
export interface SourcePosition extends FileIdentity {
  /** The path the connector was configured with when it wrote this (a changed config starts afresh). */
  path: string;
  /** Bytes of the file whose lines are in the topic: the position after the last newline (or split part) appended. */
  offset: number;
  /** Parts of a split line already appended when `offset` is inside that line (line-splitter.ts). */
  part: number;
}

/** The sink's checkpoint: the file's size after the last committed batch. */
export interface SinkPosition extends FileIdentity {
  path: string;
  /** Bytes of the file that hold committed records; anything after is from a batch whose commit did not happen. */
  size: number;
}

export const SOURCE_STATE_KEY = 'position';
export const SINK_STATE_KEY = 'file';
const FORMAT_VERSION = 1;

export function identityOf(stats: BigIntStats): FileIdentity {
  return { dev: stats.dev, ino: stats.ino };
}

export function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

export function encodeSourcePosition(p: SourcePosition): Buffer {
  return Buffer.from(JSON.stringify({ v: FORMAT_VERSION, path: p.path, dev: String(p.dev), ino: String(p.ino), offset: p.offset, part: p.part }));
}

export function encodeSinkPosition(p: SinkPosition): Buffer {
  return Buffer.from(JSON.stringify({ v: FORMAT_VERSION, path: p.path, dev: String(p.dev), ino: String(p.ino), size: p.size }));
}

/** The stored source position, or null when there is none or it is not one this version writes (`why` says which). */
export function decodeSourcePosition(bytes: Buffer | undefined): { position: SourcePosition | null; why?: string } {
  const o = decode(bytes);
  if (o === undefined) return { position: null };
  if (o === null || !wholeNumber(o['offset']) || !wholeNumber(o['part'])) return { position: null, why: 'unreadable' };
  return { position: { path: o['path'] as string, dev: BigInt(o['dev'] as string), ino: BigInt(o['ino'] as string), offset: o['offset'], part: o['part'] } };
}

/** The stored sink position, or null (see {@link decodeSourcePosition}). */
export function decodeSinkPosition(bytes: Buffer | undefined): { position: SinkPosition | null; why?: string } {
  const o = decode(bytes);
  if (o === undefined) return { position: null };
  if (o === null || !wholeNumber(o['size'])) return { position: null, why: 'unreadable' };
  return { position: { path: o['path'] as string, dev: BigInt(o['dev'] as string), ino: BigInt(o['ino'] as string), size: o['size'] } };
}

/** The common fields checked; undefined when nothing is stored, null when what is stored is not ours. */
function decode(bytes: Buffer | undefined): Record<string, unknown> | null | undefined {
  if (bytes === undefined) return undefined;
  let o: unknown;
  try {
    o = JSON.parse(bytes.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof o !== 'object' || o === null) return null;
  const r = o as Record<string, unknown>;
  const ok = r['v'] === FORMAT_VERSION && typeof r['path'] === 'string' && /^\d+$/.test(String(r['dev'])) && /^\d+$/.test(String(r['ino']));
  return ok ? r : null;
}

function wholeNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
