/**
 * Fault scenario 'group-churn' (issue 8): a consumer group of 3 member processes
 * (group-member.ts) reads the reading topics (4 partitions each) while firmware-sim publishes
 * with QoS 1, and loses and regains members: SIGKILLs, hangs (SIGSTOP until the session times
 * out, then woken as a zombie), clean closes, and once the kill of every member. Every offset
 * must reach a member, within a member's hold on a partition in order and without gaps, one
 * member per partition and generation, redelivery only after a handover and bounded, and the
 * group's commits must end at the partitions' ends.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { FleetReport } from '../../firmware-sim/index.js';
import { mulberry32 } from '../../firmware-sim/prng.js';
import { freePort } from '../helpers/loopback.js';
import { spawnTs, type Spawned } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';
import { reportFigures } from './fault-report.js';
import { assignedToLiving, checkDeliveries, firstDeliveries, groupEvents, MemberOutput, partitionKey, type GroupEvent, type Life } from './group-churn-output.js';
import { auditLog, readAckLog } from './log-audit.js';

const GATEWAY_CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const FIRMWARE_SIM_CLI = fileURLToPath(new URL('../../firmware-sim/cli.ts', import.meta.url));
const MEMBER_SCRIPT = fileURLToPath(new URL('./group-member.ts', import.meta.url));
const PROFILE = fileURLToPath(new URL('../../devices/profiles/environment-sensor.json', import.meta.url));
/** The profile's streams: the default topic rule stores devices/{id}/{stream} in topic {stream}, keyed by device. */
const READING_TOPICS = ['climate', 'status'] as const;
/** Partitions per reading topic (config log.topicDefaults): 8 in all, so 3 members each hold 2 or 3. */
const PARTITIONS = 4;
const ALL_PARTITIONS = READING_TOPICS.flatMap((topic) => Array.from({ length: PARTITIONS }, (_, p) => partitionKey(topic, p)));
const GROUP = 'faults-churn';
/** Modest load (300 QoS 1 readings/s): every partition gets records every few tens of ms, so a stalled one shows. */
const DEVICES = 30;
const RATE_PER_DEVICE = 10;
/** Members the group runs with between faults. */
const MEMBERS = 3;
/** The fault that kills every member at once, in the middle of the run (FAULT_KINDS lists the others). */
const KILL_ALL_AT = 6;
/** The shortest the protocol allows is 1 s; 3 s keeps a loaded machine's live members in the group. */
const SESSION_TIMEOUT_MS = 3_000;
/** Each member's credit window (maxBufferedRecords): what it may hold or have on the way, and so what a handover can repeat. */
const WINDOW_RECORDS = 200;
/**
 * A member commits after writing each batch, so what it has printed but the group has not
 * committed is at most the batch in hand (its commit in flight, or refused after a rebalance)
 * plus what it took from its buffer before the new assignment reached it: at most two windows.
 * The partition's new owner starts at the last commit, so one handover repeats at most that.
 */
const HANDOVER_REDELIVERED_MAX = 2 * WINDOW_RECORDS;
/** A fault lands this long after the group settled: random, so faults hit members mid-batch and mid-commit. */
const FAULT_AFTER_MS_MIN = 1_000;
const FAULT_AFTER_MS_MAX = 3_000;
/** A gateway under tsx starts in ~1.6 s here; ten times that on a loaded machine is a failure, not slowness. */
const START_TIMEOUT_MS = 20_000;
/** A kill settles after the session timeout and a replacement's start (~2 s under tsx): ten times that is a failure. */
const SETTLE_TIMEOUT_MS = 40_000;
/** The group reads the backlog left when the devices stop: seconds at 300 readings/s. */
const DRAIN_TIMEOUT_MS = 60_000;
/** Enough of a child's output to show why it failed. */
const OUTPUT_TAIL_CHARS = 3000;
/** Fixed so a failure can be rerun; FAULTS_SEED picks another sequence of faults and readings. */
const SEED = Number(process.env['FAULTS_SEED'] ?? 20_260_808);

interface GroupState {
  generation: number;
  members: Array<{ memberId: string; assignment: Array<{ topic: string; partition: number }> }>;
  offsets: Array<{ topic: string; partition: number; committed: number | null; highWatermark: number }>;
}

/** The group as the coordinator sees it (GET /api/groups/{id}); undefined before it exists. */
async function describeGroup(httpPort: number): Promise<GroupState | undefined> {
  const response = await fetch(`http://127.0.0.1:${httpPort}/api/groups/${GROUP}`);
  if (response.status === 404) return undefined;
  if (!response.ok) throw new Error(`/api/groups/${GROUP} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as GroupState;
}

/** Whether both reading topics exist (the devices' first readings create them). */
async function topicsExist(httpPort: number): Promise<boolean> {
  const response = await fetch(`http://127.0.0.1:${httpPort}/api/topics`);
  if (!response.ok) throw new Error(`/api/topics answered ${response.status}`);
  const { topics } = (await response.json()) as { topics: Array<{ name: string; partitions: number }> };
  return READING_TOPICS.every((name) => topics.some((t) => t.name === name && t.partitions === PARTITIONS));
}

interface Member extends Life {
  spawned: Spawned;
}

type FaultKind = 'kill' | 'hang' | 'close' | 'kill-all';

/**
 * The membership faults besides the kill of all members: SIGKILL (the OS closes the member's
 * socket, so the gateway sees it leave at once), a hang (SIGSTOP: the socket stays open and only
 * the session timeout removes the member; SIGCONT then wakes it as a zombie), and a clean close
 * (SIGTERM: the member commits and leaves). 4 + 4 + 3, with the kill of all: 12.
 */
const FAULT_KINDS: readonly FaultKind[] = ['kill', 'kill', 'kill', 'kill', 'hang', 'hang', 'hang', 'hang', 'close', 'close', 'close'];
const FAULTS = FAULT_KINDS.length + 1;
const FAULT_SIGNAL: Record<FaultKind, NodeJS.Signals> = { kill: 'SIGKILL', hang: 'SIGSTOP', close: 'SIGTERM', 'kill-all': 'SIGKILL' };
/** group-member.ts exits 0 when closed and 2 when its consumer failed, as a woken zombie's does (UNKNOWN_MEMBER). */
const FAULT_EXIT: Record<FaultKind, number | string> = { kill: 'SIGKILL', hang: 2, close: 0, 'kill-all': 'SIGKILL' };

/** A seeded Fisher-Yates shuffle of a copy of `items`. */
function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

interface Fault {
  kind: FaultKind;
  atMs: number;
  victims: string[];
}

/** Records of `victim`'s partitions (its last assignment) that other members got between its hang and its removal. */
function heldWhileHung(members: readonly Member[], victim: Member, hungAtMs: number, removedAtMs: number): string[] {
  const assignment = victim.output.lines.filter((l) => l.kind === 'A').at(-1);
  const held = new Set(assignment?.kind === 'A' ? assignment.partitions.map((p) => partitionKey(p.topic, p.partition)) : []);
  const problems: string[] = [];
  for (const m of members) {
    if (m === victim) continue;
    const taken = m.output.lines.find((l) => l.kind === 'R' && l.atMs > hungAtMs && l.atMs < removedAtMs && held.has(partitionKey(l.topic, l.partition)));
    if (taken?.kind === 'R') problems.push(`${m.output.name} got ${partitionKey(taken.topic, taken.partition)}@${taken.offset} while ${victim.output.name}, which held it, was hung but not yet removed`);
  }
  return problems;
}

function alive(s: Spawned): boolean {
  return s.child.exitCode === null && s.child.signalCode === null;
}

describe('group churn', () => {
  it(`a consumer group through ${FAULTS} membership faults under load delivers every offset, commits to the end, and repeats only after handovers`, async () => {
    const startedAtMs = performance.now();
    const random = mulberry32(SEED);
    const dir = tempDir('edgelog-faults-');
    const work = tempDir('edgelog-faults-work-');
    const [mqttPort, httpPort] = [await freePort(), await freePort()];
    const configFile = join(work, 'edgelog.yaml');
    writeFileSync(configFile, stringify({ log: { topicDefaults: { partitions: PARTITIONS } } }));

    // The coordinator's log lines (JSON, info) say when each rebalance happened and what it was for.
    const gateway = spawnTs(GATEWAY_CLI, ['start', '--config', configFile, '--data-dir', dir, '--mqtt-port', String(mqttPort), '--http-port', String(httpPort)], {
      EDGELOG_LOG_LEVEL: 'info',
      EDGELOG_LOG_FORMAT: 'json',
    });
    await gateway.waitForLine(/edgelog gateway started/, START_TIMEOUT_MS);
    const ackLogFile = join(work, 'acks.ndjson');
    const reportFile = join(work, 'report.json');
    const sim = spawnTs(FIRMWARE_SIM_CLI, [
      '--gateway', `mqtt://127.0.0.1:${mqttPort}`, '--devices', String(DEVICES), '--rate', String(RATE_PER_DEVICE), '--duration', '600',
      '--qos', '1', '--profile', PROFILE, '--format', 'json', '--seed', String(SEED), '--ack-log', ackLogFile, '--report', reportFile, '--log-level', 'error',
    ]);
    /** waitFor, and on a timeout the last words of the gateway and the simulator, which usually say why. */
    const until = async (condition: () => boolean | Promise<boolean>, what: string, timeoutMs: number): Promise<void> => {
      try {
        await waitFor(condition, what, timeoutMs);
      } catch (error) {
        const tails = `gateway:\n${gateway.output().slice(-OUTPUT_TAIL_CHARS)}\nfirmware-sim:\n${sim.output().slice(-OUTPUT_TAIL_CHARS)}`;
        throw new Error(`${(error as Error).message}\n${tails}`, { cause: error });
      }
    };
    await until(() => topicsExist(httpPort), 'the devices to create both reading topics', START_TIMEOUT_MS);

    const members: Member[] = [];
    let live: Member[] = [];
    let epoch = 0;
    const spawnMember = (): Member => {
      const name = `member-${members.length + 1}`;
      const file = join(work, `${name}.tsv`);
      const spawned = spawnTs(MEMBER_SCRIPT, [
        '--url', `http://127.0.0.1:${httpPort}`, '--group', GROUP, '--topics', READING_TOPICS.join(','), '--client-id', name, '--out', file,
        '--session-timeout-ms', String(SESSION_TIMEOUT_MS), '--max-buffered-records', String(WINDOW_RECORDS),
      ]);
      const member = { spawned, output: new MemberOutput(file, name), epoch };
      members.push(member);
      return member;
    };
    const checkRunning = (what: string): void => {
      if (!alive(gateway)) throw new Error(`the gateway exited while waiting for ${what}:\n${gateway.output().slice(-OUTPUT_TAIL_CHARS)}`);
      if (!alive(sim)) throw new Error(`firmware-sim exited while waiting for ${what}:\n${sim.output().slice(-OUTPUT_TAIL_CHARS)}`);
      for (const m of live) if (!alive(m.spawned)) throw new Error(`${m.output.name} exited by itself while waiting for ${what}:\n${m.spawned.output().slice(-OUTPUT_TAIL_CHARS)}`);
    };
    /** Waits until the coordinator has exactly the live members and every partition flows in its current generation. */
    const settle = (what: string): Promise<void> =>
      until(
        async () => {
          checkRunning(what);
          for (const m of live) m.output.poll();
          if (live.some((m) => m.output.memberId === undefined)) return false;
          const group = await describeGroup(httpPort);
          if (group === undefined || group.members.length !== live.length) return false;
          if (!live.every((m) => group.members.some((gm) => gm.memberId === m.output.memberId))) return false;
          if (group.members.reduce((sum, m) => sum + m.assignment.length, 0) !== ALL_PARTITIONS.length) return false;
          return ALL_PARTITIONS.every((key) => live.some((m) => (m.output.deliveredGeneration.get(key) ?? -1) >= group.generation));
        },
        what,
        SETTLE_TIMEOUT_MS,
      );

    live = Array.from({ length: MEMBERS }, spawnMember);
    await settle('the first members to share every partition');

    // The kinds in a seeded order: each kind several times, the kill of all members in the middle.
    const kinds = shuffled(FAULT_KINDS, random);
    kinds.splice(KILL_ALL_AT, 0, 'kill-all');
    const faults: Fault[] = [];
    for (const [i, kind] of kinds.entries()) {
      // The fault's moment is the fault being injected, not a wait for correctness.
      await new Promise((resolve) => setTimeout(resolve, FAULT_AFTER_MS_MIN + random() * (FAULT_AFTER_MS_MAX - FAULT_AFTER_MS_MIN)));
      checkRunning(`fault ${i + 1}`);
      for (const m of live) m.output.poll();
      const victims = kind === 'kill-all' ? [...live] : [live[Math.floor(random() * live.length)]!];
      const victimIds = victims.map((v) => v.output.memberId!);
      const atMs = Date.now();
      for (const v of victims) v.spawned.child.kill(FAULT_SIGNAL[kind]);
      faults.push({ kind, atMs, victims: victimIds });
      live = live.filter((m) => !victims.includes(m));
      if (kind === 'hang') {
        // A frozen member keeps its connection open: only its session timeout tells the coordinator.
        await until(
          async () => {
            checkRunning(`the hung ${victims[0]!.output.name} to time out`);
            const group = await describeGroup(httpPort);
            return group !== undefined && !group.members.some((m) => victimIds.includes(m.memberId));
          },
          `the coordinator to remove the hung ${victims[0]!.output.name} after its session timeout`,
          SETTLE_TIMEOUT_MS,
        );
        // Woken, it is a zombie: the gateway removed it, so it must stop without committing anything more.
        victims[0]!.spawned.child.kill('SIGCONT');
      }
      for (const v of victims) {
        const how = await v.spawned.exited;
        expect(how, `${v.output.name} after ${kind}:\n${v.spawned.output().slice(-OUTPUT_TAIL_CHARS)}`).toBe(FAULT_EXIT[kind]);
      }
      if (kind === 'kill-all') {
        // The group comes back from its committed offsets alone: the dead members are gone first.
        await until(
          async () => {
            checkRunning('the group to empty');
            return (await describeGroup(httpPort))?.members.length === 0;
          },
          'the group to empty after every member was killed',
          SETTLE_TIMEOUT_MS,
        );
        epoch++;
        live = Array.from({ length: MEMBERS }, spawnMember);
      } else {
        // A supervisor replaces the member at once.
        live = [...live, spawnMember()];
      }
      await settle(`the group to settle after fault ${i + 1} (${kind})`);
    }

    // The devices stop; the last members read what is left, then everything stops cleanly.
    const loadEndMs = Date.now();
    sim.child.kill('SIGTERM');
    expect(await sim.exited, sim.output().slice(-OUTPUT_TAIL_CHARS)).toBe(130);
    let final: GroupState | undefined;
    await until(
      async () => {
        for (const m of live) if (!alive(m.spawned)) throw new Error(`${m.output.name} exited by itself during the drain:\n${m.spawned.output().slice(-OUTPUT_TAIL_CHARS)}`);
        final = await describeGroup(httpPort);
        return final !== undefined && final.offsets.length === ALL_PARTITIONS.length && final.offsets.every((o) => o.committed === o.highWatermark);
      },
      "the group's lag to reach 0",
      DRAIN_TIMEOUT_MS,
    );
    for (const m of live) m.spawned.child.kill('SIGTERM');
    for (const m of live) expect(await m.spawned.exited, m.spawned.output().slice(-OUTPUT_TAIL_CHARS)).toBe(0);
    gateway.child.kill('SIGTERM');
    expect(await gateway.exited, gateway.output().slice(-OUTPUT_TAIL_CHARS)).toBe(0);

    // ---------------------------------------------------------------- the audit
    for (const m of members) m.output.poll();
    const acked = readAckLog(ackLogFile);
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as FleetReport;
    const audit = await auditLog(dir, READING_TOPICS);
    const committed = audit.committed.get(GROUP) ?? new Map<string, number>();
    const check = checkDeliveries(members, committed, HANDOVER_REDELIVERED_MAX);
    const lostInLog = [...acked.keys()].filter((id) => !audit.stored.has(id));
    const lost = [...acked.keys()].filter((id) => !check.readings.has(id));

    // Rebalance time: from each coordinator rebalance until every partition it gave a living member flowed in that generation or later.
    const events = groupEvents(gateway.output(), GROUP);
    const timingProblems: string[] = [];
    const flowingAfter = (epochOf: number, generation: number, partitions: readonly string[], fromMs: number, what: string): number => {
      const first = firstDeliveries(members, epochOf, generation, partitions);
      const stalled = partitions.filter((key) => !first.has(key));
      if (stalled.length > 0) timingProblems.push(`${what}: ${stalled.join(', ')} never delivered again`);
      return Math.max(0, ...[...first.values()].map((ms) => ms - fromMs));
    };
    const rebalances = events.filter((e) => !e.empty);
    let rebalanceMsMax = 0;
    for (const e of rebalances.filter((r) => r.atMs <= loadEndMs)) {
      const partitions = assignedToLiving(members, e.epoch, e.generation);
      rebalanceMsMax = Math.max(rebalanceMsMax, flowingAfter(e.epoch, e.generation, partitions, e.atMs, `after '${e.msg}' (generation ${e.generation})`));
    }
    // Fault to flowing: a hang waits out the session timeout; after the kill of all, the group is back once new members read every partition.
    let faultMsMax = 0;
    for (const [i, f] of faults.entries()) {
      const what = f.kind === 'hang' ? 'member removed: session timeout' : 'member left';
      const ends = events.filter((e) => e.msg.startsWith(what) && e.memberIds.some((id) => f.victims.includes(id)));
      const last: GroupEvent | undefined = ends.at(-1);
      if (last === undefined || new Set(ends.flatMap((e) => e.memberIds)).size < f.victims.length) {
        timingProblems.push(`fault ${i + 1} (${f.kind}): the coordinator never logged '${what}' for ${f.victims.join(', ')}`);
        continue;
      }
      faultMsMax = Math.max(faultMsMax, last.empty ? flowingAfter(last.epoch + 1, 0, ALL_PARTITIONS, f.atMs, `fault ${i + 1}`) : flowingAfter(last.epoch, last.generation, ALL_PARTITIONS, f.atMs, `fault ${i + 1}`));
      if (f.kind === 'hang') {
        // Until its session expired, the hung member's partitions were its own: nobody else got their records.
        const victim = members.find((m) => m.output.memberId === f.victims[0])!;
        timingProblems.push(...heldWhileHung(members, victim, f.atMs, last.atMs));
        if (!['UNKNOWN_MEMBER', 'CONNECTION_LOST'].includes(victim.output.exit ?? '')) timingProblems.push(`the woken zombie ${victim.output.name} stopped with '${victim.output.exit}'`);
      }
    }

    const figures = reportFigures({
      scenario: 'group-churn',
      seed: SEED,
      faults: faults.length,
      acked: acked.size,
      found: check.distinct,
      lost: lost.length,
      duplicated: check.duplicated,
      recoveryMsMax: rebalanceMsMax,
      elapsedS: Math.round((performance.now() - startedAtMs) / 1000),
      extra: {
        'members started': members.length,
        killed: faults.filter((f) => f.kind === 'kill' || f.kind === 'kill-all').reduce((sum, f) => sum + f.victims.length, 0),
        hung: faults.filter((f) => f.kind === 'hang').length,
        closed: faults.filter((f) => f.kind === 'close').length,
        rebalances: rebalances.length,
        'final generation': final?.generation ?? -1,
        'fault to flowing ms max': faultMsMax,
        handovers: check.handovers,
        'max redelivered per handover': check.handoverRedeliveredMax,
        'stale commits': members.reduce((sum, m) => sum + m.output.staleCommits, 0),
      },
    });

    expect(audit.problems).toEqual([]);
    expect(lostInLog.slice(0, 20), `${lostInLog.length} acknowledged readings are not in the log`).toEqual([]);
    expect(check.undelivered).toEqual([]);
    expect(lost.slice(0, 20), `${lost.length} acknowledged readings were never delivered to a member`).toEqual([]);
    expect(check.problems).toEqual([]);
    expect(timingProblems).toEqual([]);
    // The ack log is complete and the run had real load and real churn.
    expect([...acked.values()].every((n) => n === 1)).toBe(true);
    expect(acked.size).toBe(report.readings.acknowledged);
    expect(figures.acked).toBeGreaterThan(10_000);
    expect(rebalances.length).toBeGreaterThanOrEqual(FAULTS);
    // The group's final commits are the partitions' ends: every partition committed, none short (the audit found none ahead).
    expect([...committed.keys()].sort()).toEqual([...ALL_PARTITIONS].sort());
    for (const o of final?.offsets ?? []) expect(committed.get(partitionKey(o.topic, o.partition)), `${o.topic}/${o.partition}`).toBe(o.highWatermark);
    for (const topic of READING_TOPICS) {
      const sum = [...committed].filter(([key]) => key.startsWith(`${topic}/`)).reduce((s, [, offset]) => s + offset, 0);
      expect(sum, `committed offsets of ${topic} against its records`).toBe(audit.recordsByTopic.get(topic));
    }
    // Every redelivery came from a handover, each bounded above (checkDeliveries lists any over it).
    expect(check.duplicated).toBeLessThanOrEqual(check.handovers * HANDOVER_REDELIVERED_MAX);
    // Every member that was neither killed nor hung stopped cleanly, by its own close.
    const hungIds = faults.filter((f) => f.kind === 'hang').flatMap((f) => f.victims);
    for (const m of members) if (m.spawned.child.signalCode !== 'SIGKILL' && !hungIds.includes(m.output.memberId ?? '')) expect(m.output.exit, m.output.name).toBe('closed');
  }, 200_000);
});
