/**
 * Reading and checking what the group-churn scenario's members printed (test/faults/group-member.ts
 * writes the lines) and what the gateway's coordinator logged. Pure parsing and checking, so the
 * scenario file keeps to the fault sequence.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { readingId, type ReadingId } from './log-audit.js';

/** Problems listed before the rest are only counted: a broken run must not fill the test's memory. */
const MAX_PROBLEMS_LISTED = 50;
/** Bytes one poll reads of a member's file at most; the next poll goes on from there. */
const READ_CHUNK_BYTES = 4 * 1024 * 1024;

export interface PartitionRef {
  topic: string;
  partition: number;
}

export interface AssignmentLine {
  kind: 'A';
  atMs: number;
  generation: number;
  memberId: string;
  partitions: Array<PartitionRef & { offset: number }>;
  added: PartitionRef[];
}

export interface RecordLine {
  kind: 'R';
  atMs: number;
  generation: number;
  memberId: string;
  topic: string;
  partition: number;
  offset: number;
  key: string;
  seq: number;
}

/** `topic/partition`, the key every per-partition map here uses. */
export function partitionKey(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

/**
 * One member life's output file, read incrementally: each poll() parses the complete lines
 * appended since the last one, so the scenario can watch members while they run.
 */
export class MemberOutput {
  /** When the member was about to join (its J line). */
  joinMs: number | undefined;
  memberId: string | undefined;
  /** A and R lines in the order the member wrote them. */
  readonly lines: Array<AssignmentLine | RecordLine> = [];
  /** Commits refused after a rebalance (S lines). */
  staleCommits = 0;
  /** How the member stopped (its X line), if it wrote one. */
  exit: string | undefined;
  /** The highest generation each partition was delivered in: grows as the member reads. */
  readonly deliveredGeneration = new Map<string, number>();
  private offset = 0;
  private partial = '';

  constructor(
    readonly file: string,
    readonly name: string,
  ) {}

  /** Parses what the member appended since the last poll; a file not yet created reads as empty. */
  poll(): void {
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch {
      return;
    }
    try {
      const size = fstatSync(fd).size;
      // Bounded: every pass reads at least one byte or ends the loop.
      while (this.offset < size) {
        const buffer = Buffer.alloc(Math.min(READ_CHUNK_BYTES, size - this.offset));
        const read = readSync(fd, buffer, 0, buffer.length, this.offset);
        if (read === 0) break;
        this.offset += read;
        const text = this.partial + buffer.toString('utf8', 0, read);
        const parts = text.split('\n');
        this.partial = parts.pop() ?? '';
        for (const line of parts) this.parse(line);
      }
    } finally {
      closeSync(fd);
    }
  }

  private parse(line: string): void {
    if (line === '') return;
    const f = line.split('\t');
    const atMs = Number(f[1]);
    switch (f[0]) {
      case 'J':
        this.joinMs = atMs;
        return;
      case 'A': {
        const a: AssignmentLine = { kind: 'A', atMs, generation: Number(f[2]), memberId: f[3]!, partitions: JSON.parse(f[4]!), added: JSON.parse(f[5]!) };
        this.memberId = a.memberId;
        this.lines.push(a);
        return;
      }
      case 'R': {
        const r: RecordLine = { kind: 'R', atMs, generation: Number(f[2]), memberId: f[3]!, topic: f[4]!, partition: Number(f[5]), offset: Number(f[6]), key: f[7]!, seq: Number(f[8]) };
        this.lines.push(r);
        const key = partitionKey(r.topic, r.partition);
        this.deliveredGeneration.set(key, Math.max(this.deliveredGeneration.get(key) ?? -1, r.generation));
        return;
      }
      case 'S':
        this.staleCommits++;
        return;
      case 'X':
        this.exit = f[2];
        return;
      default:
        // W lines (warnings) and anything else are kept in the file for a reader, not checked.
        return;
    }
  }
}

/** A member life and the group epoch it belonged to (the group's generations restart after it empties). */
export interface Life {
  output: MemberOutput;
  epoch: number;
}

/** A coordinator log line about the scenario's group: a rebalance (new generation) or the group emptying. */
export interface GroupEvent {
  atMs: number;
  msg: string;
  generation: number;
  memberIds: string[];
  /** The last member went: the group was dropped, with no new generation. */
  empty: boolean;
  epoch: number;
}

/** The coordinator's membership log lines for `group` (pino JSON on the gateway's output), with their epochs. */
export function groupEvents(gatewayOutput: string, group: string): GroupEvent[] {
  const events: GroupEvent[] = [];
  let epoch = 0;
  for (const line of gatewayOutput.split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry: { group?: unknown; generation?: unknown; time?: unknown; msg?: unknown; memberId?: unknown; memberIds?: unknown; component?: unknown };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    if (entry.component !== 'groups' || entry.group !== group || typeof entry.generation !== 'number' || typeof entry.msg !== 'string') continue;
    const memberIds = Array.isArray(entry.memberIds) ? (entry.memberIds as string[]) : typeof entry.memberId === 'string' ? [entry.memberId] : [];
    const empty = entry.msg.endsWith('group is empty');
    events.push({ atMs: Number(entry.time), msg: entry.msg, generation: entry.generation, memberIds, empty, epoch });
    if (empty) epoch++;
  }
  return events;
}

/**
 * When each of `partitions` was first delivered by a life of `epoch` in generation `generation` or
 * later: the moment its records flowed again after a rebalance. A partition never delivered so is missing.
 */
export function firstDeliveries(lives: readonly Life[], epoch: number, generation: number, partitions: readonly string[]): Map<string, number> {
  const wanted = new Set(partitions);
  const first = new Map<string, number>();
  for (const { output, epoch: e } of lives) {
    if (e !== epoch) continue;
    for (const line of output.lines) {
      if (line.kind !== 'R' || line.generation < generation) continue;
      const key = partitionKey(line.topic, line.partition);
      if (!wanted.has(key)) continue;
      const seen = first.get(key);
      if (seen === undefined || line.atMs < seen) first.set(key, line.atMs);
    }
  }
  return first;
}

/** Partitions that living members were given in `generation` of `epoch` (their A lines): a dead member's are not among them. */
export function assignedToLiving(lives: readonly Life[], epoch: number, generation: number): string[] {
  const keys = new Set<string>();
  for (const { output, epoch: e } of lives) {
    if (e !== epoch) continue;
    for (const line of output.lines) {
      if (line.kind === 'A' && line.generation === generation) for (const p of line.partitions) keys.add(partitionKey(p.topic, p.partition));
    }
  }
  return [...keys];
}

/** What {@link checkDeliveries} found; `problems` lists every broken rule in words. */
export interface DeliveryCheck {
  /** Records handed to members, repeats included. */
  deliveries: number;
  /** Distinct records (topic, partition, offset) delivered. */
  distinct: number;
  /** deliveries − distinct: records delivered again after a handover. */
  duplicated: number;
  /** The readings (device, stream, seq) of every record delivered. */
  readings: Set<ReadingId>;
  /** A partition starting with a member (after the first): where redelivery can happen. */
  handovers: number;
  /** The most records one handover delivered again. */
  handoverRedeliveredMax: number;
  /** Offsets below a partition's end that no member got: at-least-once broken. */
  undelivered: string[];
  problems: string[];
}

interface Stint {
  memberId: string;
  startMs: number;
  startOffset: number;
  lastOffset: number;
}

/**
 * Checks the members' output against the rules of a consumer group (docs/consume.md "Delivery
 * guarantees"): every offset below `endOffsets` delivered (at least once); within a member's hold
 * on a partition, offsets dense and increasing from the offset its assignment named; no record of a
 * partition outside the member's assignment; one member per partition and generation; and each
 * handover redelivering at most `handoverRedeliveredLimit` records.
 */
export function checkDeliveries(lives: readonly Life[], endOffsets: ReadonlyMap<string, number>, handoverRedeliveredLimit: number): DeliveryCheck {
  const problems: string[] = [];
  const note = (problem: string): void => {
    if (problems.length < MAX_PROBLEMS_LISTED) problems.push(problem);
    else if (problems.length === MAX_PROBLEMS_LISTED) problems.push('... and more problems, not listed');
  };
  const delivered = new Map<string, Uint8Array>([...endOffsets].map(([key, end]) => [key, new Uint8Array(end)]));
  const stints = new Map<string, Stint[]>();
  const owners = new Map<string, string>();
  const readings = new Set<ReadingId>();
  let deliveries = 0;
  let distinct = 0;
  for (const { output, epoch } of lives) {
    const holding = new Map<string, Stint>();
    for (const line of output.lines) {
      if (line.kind === 'A') {
        const now = new Set(line.partitions.map((p) => partitionKey(p.topic, p.partition)));
        for (const key of [...holding.keys()]) if (!now.has(key)) holding.delete(key);
        for (const p of line.partitions) {
          const key = partitionKey(p.topic, p.partition);
          if (holding.has(key)) continue;
          // A partition new to this member starts where the coordinator said (the group's commit).
          const stint = { memberId: line.memberId, startMs: line.atMs, startOffset: p.offset, lastOffset: p.offset - 1 };
          holding.set(key, stint);
          stints.set(key, [...(stints.get(key) ?? []), stint]);
        }
        continue;
      }
      const key = partitionKey(line.topic, line.partition);
      deliveries++;
      readings.add(readingId(line.key, line.topic, line.seq));
      const stint = holding.get(key);
      if (stint === undefined) {
        note(`${output.name} (${line.memberId}) got ${key}@${line.offset} in generation ${line.generation}, outside its assignment`);
        continue;
      }
      if (line.offset !== stint.lastOffset + 1) {
        note(`${output.name} got ${key}@${line.offset} after ${stint.lastOffset} while holding the partition: offsets must be dense and increasing`);
      }
      stint.lastOffset = Math.max(stint.lastOffset, line.offset);
      const owner = `${epoch}/${line.generation}/${key}`;
      const other = owners.get(owner);
      if (other === undefined) owners.set(owner, line.memberId);
      else if (other !== line.memberId) note(`${key} was delivered to ${other} and ${line.memberId} in the same generation ${line.generation}`);
      const seen = delivered.get(key);
      if (seen === undefined || line.offset >= seen.length) {
        note(`${output.name} got ${key}@${line.offset}, beyond the partition's end ${seen?.length ?? 'unknown'}`);
        continue;
      }
      if (seen[line.offset] === 0) distinct++;
      seen[line.offset] = 1;
    }
  }
  const undelivered: string[] = [];
  for (const [key, seen] of delivered) {
    const missing = seen.indexOf(0);
    if (missing >= 0) undelivered.push(`${key}: offset ${missing} of 0..${seen.length - 1} was never delivered (${seen.filter((b) => b === 0).length} missing)`);
  }
  let handovers = 0;
  let handoverRedeliveredMax = 0;
  for (const [key, list] of stints) {
    // Redelivery happens where a member starts on a partition below what was already delivered: the
    // records after the partition's last commit before the handover.
    let deliveredUpTo = -1;
    for (const [i, s] of [...list].sort((a, b) => a.startMs - b.startMs).entries()) {
      if (i > 0) handovers++;
      if (s.startOffset > deliveredUpTo + 1) note(`${key}: ${s.memberId} started at ${s.startOffset}, but only offsets up to ${deliveredUpTo} had been delivered`);
      const redelivered = Math.max(0, Math.min(s.lastOffset, deliveredUpTo) - s.startOffset + 1);
      handoverRedeliveredMax = Math.max(handoverRedeliveredMax, redelivered);
      if (redelivered > handoverRedeliveredLimit) {
        note(`${key}: ${s.memberId} started at ${s.startOffset} and redelivered ${redelivered} records (up to ${deliveredUpTo}), more than the ${handoverRedeliveredLimit} a handover may`);
      }
      deliveredUpTo = Math.max(deliveredUpTo, s.lastOffset);
    }
  }
  return { deliveries, distinct, duplicated: deliveries - distinct, readings, handovers, handoverRedeliveredMax, undelivered, problems };
}
