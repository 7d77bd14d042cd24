import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startGateway } from '../helpers/gateway.js';
import { spawnTs } from '../helpers/process.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const TOKEN = 'cli-admin-token-0123456789abcdef';

/** The gateway's refusal of a request without its token, as `edgelog` prints it: one line, exit 1. */
const AUTH_FAILED_LINE = /^edgelog: .*admin token.* \(AUTH_FAILED\)\n$/;

/** What produce and consume print when the gateway closes their WebSocket for want of the token: one whole line, saying how to give it. */
const wsRefusal = (gateway: Gateway) =>
  `edgelog: the gateway at http://127.0.0.1:${gateway.ports.http} refused the connection without its admin token (or with a wrong one): give it with --token TOKEN or EDGELOG_ADMIN_TOKEN (config key admin.token of the gateway) (AUTH_FAILED)\n`;

/**
 * Runs `edgelog ARGS --gateway <gateway>` and waits for it to exit. The environment never lends a
 * token or a gateway address unless the test gives one.
 */
async function run(args: string[], gateway: Gateway, opts: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): Promise<{ code: number | string; out: string }> {
  const proc = spawnTs(CLI, [...args, '--gateway', `http://127.0.0.1:${gateway.ports.http}`], { EDGELOG_GATEWAY: undefined, EDGELOG_ADMIN_TOKEN: undefined, ...opts.env });
  proc.child.stdin.end(opts.stdin ?? '');
  const code = await proc.exited;
  return { code, out: proc.output() };
}

describe('edgelog commands against a gateway with an admin token', () => {
  it('topics list: refused in one line without the token, listed with --token or EDGELOG_ADMIN_TOKEN', async () => {
    const gateway = await startGateway({ 'admin.token': TOKEN });
    await gateway.log.createTopic('readings');
    await gateway.log.commitOffsets('analytics', [{ topic: 'readings', partition: 0, offset: 0 }]);
    // Each run is a process of its own: run them side by side.
    const [without, wrong, flag, env, flagOverEnv, groups, describeTopic, bridges] = await Promise.all([
      run(['topics', 'list'], gateway),
      run(['topics', 'list', '--token', `${TOKEN}-wrong`], gateway),
      run(['topics', 'list', '--token', TOKEN], gateway),
      run(['topics', 'list'], gateway, { env: { EDGELOG_ADMIN_TOKEN: TOKEN } }),
      run(['topics', 'list', '--token', TOKEN], gateway, { env: { EDGELOG_ADMIN_TOKEN: 'not-the-token-0123456789' } }),
      run(['groups', 'list', '--token', TOKEN], gateway),
      run(['topics', 'describe', 'readings', '--json', '--token', TOKEN], gateway),
      run(['bridges', '--token', TOKEN], gateway),
    ]);
    expect(without.code).toBe(1);
    expect(without.out).toMatch(AUTH_FAILED_LINE);
    expect(without.out).toContain('--token or EDGELOG_ADMIN_TOKEN');
    expect(wrong).toEqual({ code: 1, out: 'edgelog: the admin token is wrong: use the value of config key admin.token (or EDGELOG_ADMIN_TOKEN) of this gateway (AUTH_FAILED)\n' });
    // The flag wins over the environment.
    for (const listed of [flag, env, flagOverEnv]) {
      expect(listed.code).toBe(0);
      expect(listed.out).toMatch(/^TOPIC +PARTITIONS +RECORDS +BYTES\nreadings +1 +0 +0\n$/);
    }
    // Every admin command takes the flag, whatever its subcommand.
    expect(groups).toEqual({ code: 0, out: 'GROUP      STATE  MEMBERS\nanalytics  empty  0\n' });
    expect(describeTopic.code).toBe(0);
    expect(JSON.parse(describeTopic.out)).toEqual(gateway.log.describeTopic('readings'));
    expect(bridges.code).toBe(0);
  });

  it('produce and consume work with the token and fail with AUTH_FAILED without it', async () => {
    const gateway = await startGateway({ 'admin.token': TOKEN });
    const [refusedProduce, produced] = await Promise.all([
      run(['produce', 'lines'], gateway, { stdin: 'never stored\n' }),
      run(['produce', 'lines', '--token', TOKEN], gateway, { stdin: 'first\nsecond\n' }),
    ]);
    expect(refusedProduce.code).toBe(1);
    expect(refusedProduce.out).toBe(wsRefusal(gateway));
    expect(produced).toEqual({ code: 0, out: "Produced 2 record(s) to topic 'lines' (partitions 0).\n" });
    // Only the producer with the token stored anything.
    expect(gateway.log.read('lines', 0, 0).records.map((r) => r.value.toString())).toEqual(['first', 'second']);

    const [refusedConsume, consumed, consumedEnv] = await Promise.all([
      run(['consume', 'lines', '--from-beginning', '--max', '1'], gateway),
      run(['consume', 'lines', '--from-beginning', '--max', '1', '--token', TOKEN], gateway),
      run(['consume', 'lines', '--from-beginning', '--max', '1'], gateway, { env: { EDGELOG_ADMIN_TOKEN: TOKEN } }),
    ]);
    expect(refusedConsume.code).toBe(1);
    expect(refusedConsume.out).toBe(wsRefusal(gateway));
    for (const ok of [consumed, consumedEnv]) expect(ok).toEqual({ code: 0, out: 'first\nPrinted 1 record(s).\n' });
  });
});
