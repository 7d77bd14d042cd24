/**
 * Retention policy as a pure decision: given a partition's state and the oldest records' facts,
 * how many of the oldest records to delete now. Deletion always takes a prefix of the partition
 * (Kafka deletes whole old segments the same way), so offsets stay dense and never reused.
 */

/** The facts retention needs about one stored record, oldest first. */
export interface RetentionCandidate {
  appendTime: number;
  bytes: number;
}

/** A topic's retention limits; `-1` means no limit (Kafka's convention). */
export interface RetentionLimits {
  retentionMs: number;
  retentionBytes: number;
}

/**
 * How many of `candidates` (the oldest records of a partition, in offset order) to delete so the
 * partition meets its limits. Age uses the gateway's append time, not the device's clock, so a
 * device with a skewed clock can neither pin old data nor have fresh data deleted.
 */
export function recordsToDelete(
  candidates: readonly RetentionCandidate[],
  partitionBytes: number,
  limits: RetentionLimits,
  nowMs: number,
): number {
  let bytes = partitionBytes;
  let n = 0;
  for (const c of candidates) {
    const tooOld = limits.retentionMs >= 0 && c.appendTime < nowMs - limits.retentionMs;
    const tooBig = limits.retentionBytes >= 0 && bytes > limits.retentionBytes;
    if (!tooOld && !tooBig) break;
    bytes -= c.bytes;
    n++;
  }
  return n;
}

/**
 * What a partition's retention deletes once holds are counted (see CommitLog.holdRetention): a
 * hold keeps records from `heldFrom` on (its group's committed offset: the first record not yet
 * replicated), unless `dropHeld` (the disk-pressure policy 'drop-oldest' while under pressure),
 * when they go too and are counted as `droppedHeld` so the loss is never silent.
 */
export function applyRetentionHold(
  start: number,
  toDelete: number,
  heldFrom: number | undefined,
  dropHeld: boolean,
): { toDelete: number; droppedHeld: number } {
  if (heldFrom === undefined || start + toDelete <= heldFrom) return { toDelete, droppedHeld: 0 };
  if (dropHeld) return { toDelete, droppedHeld: start + toDelete - Math.max(start, heldFrom) };
  return { toDelete: Math.max(0, heldFrom - start), droppedHeld: 0 };
}
