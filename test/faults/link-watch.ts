/**
 * The upstream-links scenario's eyes on a gateway child (issue 8): polls GET /api/bridges in the
 * background, checks the bridges' invariants on every sample, measures recovery after each link
 * fault, and notices a gateway that exited by itself. Kept apart from the scenario so the test
 * file reads as the story of the faults.
 */
import type { BridgeReport } from '../../bridges/bridges.js';
import type { Spawned } from '../helpers/process.js';

/** Samples of /api/bridges: often enough to time a recovery to a tenth of a second, cheap for the gateway. */
const POLL_MS = 100;
/** Longer than any scenario's timeout: bounds the poll loop should stop() never come. */
const POLLING_MS_MAX = 300_000;
/** Violations listed before the rest are only counted: a broken bridge must not fill the test's memory. */
const VIOLATIONS_LISTED_MAX = 50;
/** Enough of the gateway's output to show why it exited, without pages of connection lines. */
const OUTPUT_TAIL_CHARS = 3000;

/** The time from restoring a link until its bridge acknowledged everything stored when the link came back. */
export interface Recovery {
  readonly bridge: string;
  /** What was restored: 'cut', 'cut-mid', 'refuse', 'outage'. */
  readonly label: string;
  readonly restoredAtMs: number;
  /** Per `topic/partition`: the high watermark at the restore, which `acked` must reach. */
  readonly targets: ReadonlyMap<string, number>;
  recoveredMs: number | undefined;
  /** Another fault hit the link before it recovered: its time would measure two faults, so it is not counted. */
  interrupted: boolean;
}

/** Per `topic/partition` of a bridge report, a figure of each partition. */
function byPartition(report: BridgeReport, figure: (p: BridgeReport['partitions'][number]) => number): Map<string, number> {
  return new Map(report.partitions.map((p) => [`${p.topic}/${p.partition}`, figure(p)]));
}

/** Watches the bridges of one gateway child through its admin API (loopback needs no token). */
export class LinkWatch {
  /** The latest sample, by bridge name. */
  latest = new Map<string, BridgeReport>();
  /** Each broken invariant once, in words. */
  readonly violations = new Set<string>();
  readonly recoveries: Recovery[] = [];
  /** Why the watch cannot go on (the gateway exited, the API failed): the scenario fails with it. */
  private failure: Error | undefined;
  private stopped = false;
  private polls = 0;
  private readonly loop: Promise<void>;

  constructor(
    private readonly httpPort: number,
    private readonly gateway: Spawned,
  ) {
    this.loop = this.run();
  }

  /** One GET /api/bridges; says the gateway exited by itself when that is why it failed. */
  async fetchReports(): Promise<BridgeReport[]> {
    try {
      const response = await fetch(`http://127.0.0.1:${this.httpPort}/api/bridges`);
      if (!response.ok) throw new Error(`/api/bridges answered ${response.status}`);
      return ((await response.json()) as { bridges: BridgeReport[] }).bridges;
    } catch (error) {
      const { exitCode, signalCode } = this.gateway.child;
      if (exitCode !== null || signalCode !== null) {
        throw new Error(`the gateway exited by itself (${exitCode ?? signalCode}):\n${this.gateway.output().slice(-OUTPUT_TAIL_CHARS)}`);
      }
      throw error;
    }
  }

  /** Throws what stopped the watch, if anything did. */
  check(): void {
    if (this.failure) throw this.failure;
  }

  /** Resolves once a fresh sample satisfies `condition`; fails with `what` (and the bridges' state) after `timeoutMs`. */
  async waitUntil(condition: (reports: Map<string, BridgeReport>) => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = this.polls;
      // A fresh sample: one taken after this call, not the one the previous wait ended on.
      while (this.polls === seen) {
        this.check();
        if (Date.now() > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS / 4));
      }
      this.check();
      if (condition(this.latest)) return;
      if (Date.now() > deadline) {
        const states = [...this.latest.values()].map((b) => ({ name: b.name, state: b.state, backlogRecords: b.backlogRecords, lastError: b.lastError, counters: b.counters }));
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; bridges: ${JSON.stringify(states)}`);
      }
    }
  }

  /** Starts timing a recovery: the bridge must acknowledge everything stored now. */
  async restored(bridge: string, label: string): Promise<void> {
    const restoredAtMs = performance.now();
    const report = (await this.fetchReports()).find((b) => b.name === bridge);
    if (report === undefined) throw new Error(`no bridge named ${bridge} in /api/bridges`);
    this.recoveries.push({ bridge, label, restoredAtMs, targets: byPartition(report, (p) => p.highWatermark), recoveredMs: undefined, interrupted: false });
  }

  /** A new fault on the bridge's link: recoveries still running would time two faults, so they stop counting. */
  faultOn(bridge: string): void {
    for (const r of this.recoveries) if (r.bridge === bridge && r.recoveredMs === undefined) r.interrupted = true;
  }

  /** Stops polling; throws what stopped the watch, if anything did. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.check();
  }

  private async run(): Promise<void> {
    const deadline = Date.now() + POLLING_MS_MAX;
    while (!this.stopped && Date.now() < deadline) {
      try {
        const reports = await this.fetchReports();
        this.sample(reports);
      } catch (error) {
        this.failure = error instanceof Error ? error : new Error(String(error));
        return;
      }
      this.polls++;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  /** Checks each bridge's invariants on a sample and advances the recoveries. */
  private sample(reports: BridgeReport[]): void {
    const now = performance.now();
    this.latest = new Map(reports.map((b) => [b.name, b]));
    for (const b of reports) {
      if (b.counters.lostRecords !== 0) this.violate(`bridge ${b.name} lost ${b.counters.lostRecords} records`);
      for (const p of b.partitions) {
        const where = `bridge ${b.name} ${p.topic}/${p.partition}`;
        // docs/bridges.md: a checkpoint moves only over records the upstream acknowledged, and never past the data.
        if (p.checkpoint > p.acked) this.violate(`${where}: checkpoint ${p.checkpoint} ahead of the acknowledged position ${p.acked}`);
        if (p.acked > p.highWatermark) this.violate(`${where}: acknowledged position ${p.acked} ahead of the high watermark ${p.highWatermark}`);
        if (p.stalled !== null) this.violate(`${where}: stalled at ${p.stalled.offset} (${p.stalled.code})`);
      }
    }
    for (const r of this.recoveries) {
      if (r.recoveredMs !== undefined || r.interrupted) continue;
      const report = this.latest.get(r.bridge);
      if (report === undefined) continue;
      const acked = byPartition(report, (p) => p.acked);
      if ([...r.targets].every(([where, target]) => (acked.get(where) ?? -1) >= target)) r.recoveredMs = Math.round(now - r.restoredAtMs);
    }
  }

  private violate(violation: string): void {
    if (this.violations.size < VIOLATIONS_LISTED_MAX) this.violations.add(violation);
    else this.violations.add('... and more, not listed');
  }
}
