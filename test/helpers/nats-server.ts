import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { onTestFinished } from 'vitest';
import { acceptsConnections, freePort } from './loopback.js';
import { tempDir } from './temp-dir.js';

/** Debian's nats-server (2.9.x: it acks before fsync, DESIGN "Traps"), the JetStream of the NATS bridge tests. */
export const NATS_BIN = '/usr/sbin/nats-server';

/** How long a server may take to listen after it is spawned; JetStream recovers its store first. */
const LISTEN_TIMEOUT_MS = 15_000;
/** What nats-server writes to stderr once it listens and JetStream has recovered its store. */
const READY_LINE = 'Server is ready';

/** How long a stopped server may take to exit before it is killed: it flushes its store on SIGTERM. */
const EXIT_TIMEOUT_MS = 10_000;
/** How long a fresh or degraded cluster may take to elect a JetStream meta leader (Raft elections take seconds). */
const META_LEADER_TIMEOUT_MS = 30_000;

/**
 * Why NATS tests cannot run here, or undefined when they can. In CI (CI=true) a missing binary is a
 * failure, not a skip: .ci/run installs Debian's nats-server package.
 */
export function natsSkipReason(): string | undefined {
  if (existsSync(NATS_BIN)) return undefined;
  if (process.env['CI'] === 'true') throw new Error(`${NATS_BIN} is missing in CI: .ci/run must install the nats-server package`);
  return `${NATS_BIN} is not installed (apt-get install nats-server); skipping the NATS tests`;
}

/** One nats-server process with a fixed config, port and store, so it can be stopped and started again. */
export interface NatsNode {
  readonly name: string;
  readonly port: number;
  /** nats://127.0.0.1:port */
  readonly url: string;
  /** The running process's id, or undefined while stopped. */
  readonly pid: number | undefined;
  /** The JetStream store folder; it survives stop()/start(). */
  readonly storeDir: string;
  /** Stops the server by its PID (SIGTERM by default; SIGKILL for a crash) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again with the same config, port and store; resolves once it accepts connections. */
  start(): Promise<void>;
}

/** Extra lines for a server's config, such as an `authorization { ... }` block. */
export interface NatsServerOptions {
  readonly extraConfig?: readonly string[];
}

/**
 * Starts one JetStream-enabled nats-server on a free port of 127.0.0.1 with a temporary store;
 * stopped by PID when the test finishes.
 */
export async function startNats(options: NatsServerOptions = {}): Promise<NatsNode> {
  const dir = tempDir('edgelog-nats-');
  const port = await freePort();
  const storeDir = join(dir, 'jetstream');
  const config = [`server_name: single`, `listen: 127.0.0.1:${port}`, `jetstream { store_dir: ${JSON.stringify(storeDir)} }`, ...(options.extraConfig ?? [])];
  const node = natsNode('single', port, dir, storeDir, config);
  onTestFinished(() => node.stop('SIGKILL'));
  await node.start();
  return node;
}

/** A three-node JetStream cluster on 127.0.0.1. */
export interface NatsCluster {
  readonly nodes: readonly NatsNode[];
  /** The client URLs of all nodes. */
  readonly urls: string[];
  /** Resolves once the running nodes answer JetStream API requests (a meta leader is elected). */
  waitForMetaLeader(timeoutMs?: number): Promise<void>;
}

/**
 * Starts three JetStream nodes in one cluster (each with a server_name, a cluster listen port,
 * routes to the others and its own store), stopped by PID when the test finishes, and waits for
 * the JetStream meta leader.
 */
export async function startNatsCluster(): Promise<NatsCluster> {
  const dir = tempDir('edgelog-nats-cluster-');
  const ports = await distinctFreePorts(6);
  const clientPorts = ports.slice(0, 3);
  const routePorts = ports.slice(3);
  const routes = routePorts.map((p) => `nats-route://127.0.0.1:${p}`).join(', ');
  const nodes = clientPorts.map((port, i) => {
    const name = `n${i + 1}`;
    const nodeDir = join(dir, name);
    mkdirSync(nodeDir);
    const storeDir = join(nodeDir, 'jetstream');
    const config = [
      `server_name: ${name}`,
      `listen: 127.0.0.1:${port}`,
      `jetstream { store_dir: ${JSON.stringify(storeDir)} }`,
      `cluster { name: edgelog-test, listen: 127.0.0.1:${routePorts[i]!}, routes: [${routes}] }`,
    ];
    return natsNode(name, port, nodeDir, storeDir, config);
  });
  onTestFinished(async () => {
    await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  });
  await Promise.all(nodes.map((n) => n.start()));
  const cluster: NatsCluster = {
    nodes,
    urls: nodes.map((n) => n.url),
    waitForMetaLeader: (timeoutMs = META_LEADER_TIMEOUT_MS) => waitForMetaLeader(nodes, timeoutMs),
  };
  await cluster.waitForMetaLeader();
  return cluster;
}

/** Polls the running nodes with a JetStream account-info request until one answers; bounded by `timeoutMs`. */
async function waitForMetaLeader(nodes: readonly NatsNode[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const servers = nodes.filter((n) => n.pid !== undefined).map((n) => n.url);
    try {
      const nc = await connect({ servers, reconnect: false, timeout: 2_000 });
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2_000 });
        await jsm.getAccountInfo();
        return;
      } finally {
        await nc.close();
      }
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`no JetStream meta leader within ${timeoutMs} ms: ${String(last)}`);
}

/** Distinct free ports (freePort() alone may hand out the same port twice in a row). */
async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let attempt = 0; ports.size < count; attempt++) {
    if (attempt > count * 10) throw new Error(`could not find ${count} distinct free ports`);
    ports.add(await freePort());
  }
  return [...ports];
}

function natsNode(name: string, port: number, dir: string, storeDir: string, configLines: readonly string[]): NatsNode {
  const configFile = join(dir, `${name}.conf`);
  writeFileSync(configFile, configLines.join('\n') + '\n');
  let child: ChildProcess | undefined;
  let stderr = '';
  return {
    name,
    port,
    url: `nats://127.0.0.1:${port}`,
    storeDir,
    get pid() {
      return child?.pid;
    },
    async start() {
      if (child !== undefined) return;
      const proc = spawn(NATS_BIN, ['-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
      proc.stderr?.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-4000);
      });
      child = proc;
      stderr = '';
      const deadline = Date.now() + LISTEN_TIMEOUT_MS;
      // Ready only once this process says so: after a stop, another test's server may have taken
      // the port, and a connection to it alone would pass for this server being back.
      while (!(stderr.includes(READY_LINE) && proc.exitCode === null && (await acceptsConnections(port)))) {
        if (proc.exitCode !== null) throw new Error(`nats-server ${name} exited with ${proc.exitCode}: ${stderr}`);
        if (Date.now() > deadline) throw new Error(`nats-server ${name} did not listen on ${port} within ${LISTEN_TIMEOUT_MS} ms: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
    // Synchronous up to proc.kill(): callers rely on the signal going out in the same tick as their sends.
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const proc = child;
      if (proc === undefined) return;
      child = undefined;
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), EXIT_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
