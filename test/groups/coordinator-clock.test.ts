import { pino } from 'pino';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { GroupCoordinator } from '../../src/groups/coordinator.js';
import { openTestLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** The coordinator's check interval here: several checks run while the test waits. */
const CHECK_INTERVAL_MS = 20;

describe('session timeouts and the wall clock', () => {
  it('neither expires a live member when the wall clock steps a day forward, nor keeps a silent one when it steps back', async () => {
    const log = await openTestLog();
    await log.createTopic('t');
    // The wall clock, which the test steps (a spy from the start: a clock read as Date.now is seen stepping too).
    const realNow = Date.now.bind(Date);
    const wall = vi.spyOn(Date, 'now');
    onTestFinished(() => void wall.mockRestore());
    // The default clock: what the gateway runs with.
    const c = new GroupCoordinator({ log, logger: pino({ level: 'silent' }), checkIntervalMs: CHECK_INTERVAL_MS });
    onTestFinished(() => c.close());
    const removed: string[] = [];
    const join = (clientId: string, sessionTimeoutMs: number) =>
      c.join({ groupId: 'g', clientId, topics: ['t'], sessionTimeoutMs, onAssignment: () => {}, onRemoved: (reason) => removed.push(`${clientId}: ${reason}`) });
    const live = join('live', 60_000);
    const silent = join('silent', 1000);

    // NTP steps the wall clock forward by a day (a Pi that booted without a real-time clock).
    wall.mockImplementation(() => realNow() + DAY_MS);
    c.heartbeat('g', silent.memberId);
    await new Promise((resolve) => setTimeout(resolve, 10 * CHECK_INTERVAL_MS)); // checks that must not expire anyone
    expect(removed).toEqual([]);

    // Then back by two days: the member that stopped heartbeating still times out after its 1 s.
    wall.mockImplementation(() => realNow() - DAY_MS);
    await waitFor(() => removed.length > 0, 'the silent member to time out', 5000);
    expect(removed).toEqual([expect.stringMatching(/^silent: not heard from within its session timeout/)]);
    expect(() => c.heartbeat('g', live.memberId)).not.toThrow();
  });
});
