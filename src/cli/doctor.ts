/**
 * `edgelog doctor`: checks the machine a gateway runs (or will run) on, configured the way `start`
 * would configure it, and prints one line per check with what to fix (docs/doctor.md). It only
 * reads, probes listening with a socket it closes at once, writes one probe file it deletes, and
 * connects to the configured upstreams; it changes nothing.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, realpathSync, rmSync, statfsSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { connect as connectTcp, createServer, type Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect as connectTls } from 'node:tls';
import { ENV_KEYS, loadConfig, type GatewayConfig } from '../config.js';
import {
  bindHost,
  clockCheck,
  connectFailure,
  dataDirCheck,
  diskCheck,
  formatReport,
  listenersOf,
  measuredFolder,
  mountOf,
  nodeCheck,
  ntpCheck,
  portCheck,
  serverName,
  upstreamTargets,
  FUTURE_MTIME_TOLERANCE_MS,
  type CheckResult,
  type DataDirFacts,
  type Health,
  type Mount,
  type NtpProbe,
  type UpstreamTarget,
} from './doctor-checks.js';
import { printJson } from './output.js';
import { parseCommandLine, UsageError } from './usage-error.js';

export const DOCTOR_USAGE = `Usage: edgelog doctor [options]

Checks this machine for running a gateway, configured as 'edgelog start' with the same options
would be: config, Node.js, data folder, free disk, clock, ports and upstream bridges. One line
per check (ok, warn, FAIL, skip), with a 'fix:' line under each warn and FAIL (docs/doctor.md).
Exits 0 when nothing failed (warnings allowed), 1 when a check failed.

Options (as for start; each overrides the config file and the EDGELOG_* environment):
  --config FILE         A YAML config file.
  --data-dir DIR        Where the commit log lives (default ./data).
  --mqtt-port N         The MQTT port to check (default 1883).
  --http-port N         The HTTP port to check (default 8080); a gateway already running there
                        is found through its /healthz.
  --allow-anonymous     Check the ports on 0.0.0.0, where such a gateway would listen.
  --json                Print { "checks": [{ "name", "status", "finding", "fix"? }], "ok" }.
  -h, --help            Show this help.
`;

/** A reachable upstream answers a TCP connect (and TLS handshake) in well under this, even over cellular. */
export const UPSTREAM_TIMEOUT_MS = 3000;
/** A gateway's /healthz answers at once; a port that takes longer is not an edgelog gateway worth waiting for. */
const HEALTHZ_TIMEOUT_MS = 3000;
/** timedatectl asks systemd over D-Bus; a hung bus must not hang doctor. */
const NTP_TIMEOUT_MS = 3000;
/** /healthz answers a few hundred bytes; anything this large is some other server. */
const MAX_HEALTHZ_BYTES = 64 * 1024;
/** A NATS INFO line is a few KiB; more without a line end is not a NATS server. */
const MAX_INFO_LINE_BYTES = 64 * 1024;
/** The data folder holds the log folder and a pid file; a bound on the mtime scan all the same. */
const MAX_SCANNED_FILES = 1000;

/** Runs `edgelog doctor ...` with the arguments after `doctor`; resolves false when a check failed. */
export async function doctor(argv: string[]): Promise<boolean> {
  const { values, positionals } = parseCommandLine(
    argv,
    {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      'mqtt-port': { type: 'string' },
      'http-port': { type: 'string' },
      'allow-anonymous': { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    DOCTOR_USAGE,
  );
  if (values.help) {
    process.stdout.write(DOCTOR_USAGE);
    return true;
  }
  if (positionals.length > 0) throw new UsageError(`doctor takes no arguments, got '${positionals[0]}'\n\n${DOCTOR_USAGE}`);

  const checks: CheckResult[] = [];
  let config: Readonly<GatewayConfig> | undefined;
  try {
    config = loadConfig({
      ...(values.config === undefined ? {} : { file: values.config }),
      env: process.env,
      flags: { dataDir: values['data-dir'], 'mqtt.port': values['mqtt-port'], 'http.port': values['http-port'], allowAnonymous: values['allow-anonymous'] },
    });
    checks.push({ name: 'config', status: 'ok', finding: configSource(values.config) });
  } catch (error) {
    checks.push({
      name: 'config',
      status: 'fail',
      finding: (error as Error).message,
      fix: 'correct the value the message names (config/edgelog.yaml lists every key with its default; docs/bridges.md the bridges: section)',
    });
  }
  checks.push(nodeCheck(process.version));
  if (config === undefined) {
    const skipped = 'skipped: the config did not load';
    for (const name of ['data folder', 'free disk', 'ports', 'upstreams']) checks.push({ name, status: 'skip', finding: skipped });
    checks.push(guard('clock', () => clockCheck(Date.now(), [], false)));
    checks.push(ntpCheck(await probeNtp()));
  } else {
    const facts = measureDataDir(config.dataDir);
    checks.push(dataDirCheck(facts));
    const statDir = measuredFolder(facts);
    const logBytes = facts.kind === 'folder' ? (facts.logBytes ?? 0) : 0;
    if (statDir === undefined) checks.push({ name: 'free disk', status: 'skip', finding: 'skipped: no folder to measure (see data folder)' });
    else checks.push(guard('free disk', () => freeDisk(config, statDir, logBytes)));
    const scanned = facts.kind === 'folder';
    checks.push(guard('clock', () => clockCheck(Date.now(), scanned ? futureFiles(facts.dir, Date.now()) : [], scanned)));
    checks.push(ntpCheck(await probeNtp()));
    checks.push(...(await portChecks(config)));
    checks.push(...(await upstreamChecks(config)));
  }
  const ok = checks.every((c) => c.status !== 'fail');
  if (values.json) printJson({ checks, ok });
  else process.stdout.write(formatReport(checks));
  return ok;
}

function configSource(file: string | undefined): string {
  const env = Object.keys(ENV_KEYS).filter((name) => (process.env[name] ?? '') !== '');
  const base = file === undefined ? 'no config file: the embedded defaults' : resolve(file);
  return env.length === 0 ? base : `${base}, with ${env.join(', ')} from the environment`;
}

/** A check that throws (a bug here, not a finding) is reported as a failed check rather than a stack trace. */
function guard(name: string, run: () => CheckResult): CheckResult {
  try {
    return run();
  } catch (error) {
    return { name, status: 'fail', finding: `the check itself failed: ${(error as Error)?.message ?? String(error)}`, fix: 'report this output as an edgelog bug' };
  }
}

/** Looks at the data folder (or, before the first start, the nearest folder that exists above it). */
function measureDataDir(dataDir: string): DataDirFacts {
  const dir = resolve(dataDir);
  const own = statPath(dir);
  if ('code' in own && own.code !== 'ENOENT' && own.code !== 'ENOTDIR') return { dir, kind: 'unreadable', code: own.code };
  if ('stats' in own && !own.stats.isDirectory()) return { dir, kind: 'file' };
  if ('stats' in own) {
    const mdb = statPath(join(dir, 'log', 'data.mdb'));
    return {
      dir,
      kind: 'folder',
      writeError: probeWrite(dir),
      // Blocks are what the disk actually gives up (a sparse file's size would overstate it).
      logBytes: 'stats' in mdb ? Math.min(mdb.stats.size, mdb.stats.blocks * 512) : undefined,
      owner: lockOwner(dir),
      mount: mountFor(dir),
    };
  }
  const parent = nearestExisting(dirname(dir));
  if (parent === undefined) return { dir, kind: 'missing', parent: undefined };
  const isFolder = parent.stats.isDirectory();
  return {
    dir,
    kind: 'missing',
    parent: { path: parent.path, isFolder, writeError: isFolder ? probeWrite(parent.path) : undefined },
    mount: isFolder ? mountFor(parent.path) : undefined,
  };
}

/** The mount holding `path` (symlinks resolved: /var/lib/edgelog -> /mnt/usb/edgelog), where /proc/mounts exists. */
function mountFor(path: string): Mount | undefined {
  try {
    return mountOf(readFileSync('/proc/mounts', 'utf8'), realpathSync.native(path));
  } catch {
    return undefined;
  }
}

function statPath(path: string): { stats: Stats } | { code: string } {
  try {
    return { stats: statSync(path) };
  } catch (error) {
    return { code: (error as NodeJS.ErrnoException).code ?? String(error) };
  }
}

function nearestExisting(start: string): { path: string; stats: Stats } | undefined {
  // Bounded by the depth of the path: dirname of the root is the root.
  for (let path = start; ; path = dirname(path)) {
    const s = statPath(path);
    if ('stats' in s) return { path, stats: s.stats };
    if (s.code !== 'ENOENT' && s.code !== 'ENOTDIR') return undefined;
    if (dirname(path) === path) return undefined;
  }
}

/** Creates and deletes a probe file in `dir`; the error code when that fails. Root ignores permissions, not EROFS. */
function probeWrite(dir: string): string | undefined {
  const probe = join(dir, `.edgelog-doctor-${process.pid}-${Date.now()}`);
  try {
    writeFileSync(probe, '', { flag: 'wx' });
    rmSync(probe, { force: true });
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}

/** The pid in the log's lock file (src/log/dir-lock.ts) when that process is alive. */
function lockOwner(dir: string): number | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(join(dir, 'edgelog.pid'), 'utf8'), 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

function freeDisk(config: Readonly<GatewayConfig>, statDir: string, logBytes: number): CheckResult {
  const s = statfsSync(statDir);
  return diskCheck({
    dir: statDir,
    freeBytes: s.bavail * s.bsize,
    totalBytes: s.blocks * s.bsize,
    minFreeDiskBytes: config.log.minFreeDiskBytes,
    maxLogBytes: config.log.maxLogBytes,
    logBytes,
  });
}

/** Files in the data folder and its subfolders (one level) written more than the tolerance after `nowMs`, latest first. */
function futureFiles(dir: string, nowMs: number): { path: string; mtimeMs: number }[] {
  const found: { path: string; mtimeMs: number }[] = [];
  let scanned = 0;
  const scan = (folder: string, depth: number) => {
    let entries;
    try {
      entries = readdirSync(folder, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (++scanned > MAX_SCANNED_FILES) return;
      const path = join(folder, entry.name);
      if (entry.isDirectory()) {
        if (depth < 1) scan(path, depth + 1);
        continue;
      }
      const s = statPath(path);
      if ('stats' in s && s.stats.mtimeMs > nowMs + FUTURE_MTIME_TOLERANCE_MS) found.push({ path, mtimeMs: s.stats.mtimeMs });
    }
  };
  scan(dir, 0);
  return found.sort((a, b) => b.mtimeMs - a.mtimeMs);
}

function probeNtp(): Promise<NtpProbe> {
  return new Promise((resolveProbe) => {
    execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: NTP_TIMEOUT_MS }, (error, stdout, stderr) => {
      if ((error as NodeJS.ErrnoException | null)?.code === 'ENOENT') return resolveProbe({ kind: 'missing' });
      if (error) return resolveProbe({ kind: 'failed', message: (String(stderr).trim().split('\n')[0] || error.message).slice(0, 200) });
      resolveProbe({ kind: 'answer', value: String(stdout).trim() });
    });
  });
}

/** Each port the gateway would listen on, on the host it would bind (src/gateway.ts). */
async function portChecks(config: Readonly<GatewayConfig>): Promise<CheckResult[]> {
  const host = bindHost(config);
  let health: Promise<Health | undefined> | undefined;
  const listeners = listenersOf(config);
  const results: CheckResult[] = [];
  for (const l of listeners) {
    const outcome = l.port === 0 ? 'free' : await tryListen(host, l.port);
    // Only a port in use makes it worth asking whether the gateway itself holds it.
    const running = outcome === 'EADDRINUSE' && config.http.port !== 0 ? await (health ??= fetchHealth(config.http.port)) : undefined;
    results.push(portCheck(l, host, outcome, running, listeners));
  }
  return results;
}

/** Listens on host:port and closes at once: 'free', or the error code that listening failed with. */
function tryListen(host: string, port: number): Promise<string> {
  return new Promise((resolveListen) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolveListen(error.code ?? String(error)));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolveListen('free')));
  });
}

/** GET /healthz on loopback; the answer when it is an edgelog gateway's, otherwise undefined. */
async function fetchHealth(httpPort: number): Promise<Health | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`, { signal: AbortSignal.timeout(HEALTHZ_TIMEOUT_MS) });
    const chunks: Buffer[] = [];
    let bytes = 0;
    // Leaving the loop early cancels the rest of the body.
    for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
      bytes += chunk.length;
      if (bytes > MAX_HEALTHZ_BYTES) return undefined;
      chunks.push(Buffer.from(chunk));
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { status?: unknown; service?: unknown; gatewayId?: unknown; ports?: unknown };
    if (body?.status !== 'ok' || body.service !== 'edgelog') return undefined;
    const ports: Record<string, number> = {};
    if (typeof body.ports === 'object' && body.ports !== null) {
      for (const [k, v] of Object.entries(body.ports)) if (typeof v === 'number') ports[k] = v;
    }
    return { gatewayId: typeof body.gatewayId === 'string' ? body.gatewayId : undefined, ports };
  } catch {
    // Not HTTP, not JSON, not answering: whatever holds the port, it is not an edgelog gateway.
    return undefined;
  }
}

/** One line per server address of every bridge, probed in parallel so the total stays near one timeout. */
async function upstreamChecks(config: Readonly<GatewayConfig>): Promise<CheckResult[]> {
  const targets = upstreamTargets(config.bridges);
  if (targets.length === 0) return [{ name: 'upstreams', status: 'ok', finding: 'no bridges configured' }];
  return Promise.all(targets.map((t) => checkUpstream(t)));
}

async function checkUpstream(t: UpstreamTarget): Promise<CheckResult> {
  const name = `upstream ${t.bridge}`;
  const prefix = `bridge ${t.bridge}: ${t.url}`;
  const tlsKey = t.key.replace(/\.(url|servers.*)$/, '.tls');
  let pem: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
  for (const [field, option] of [['caFile', 'ca'], ['certFile', 'cert'], ['keyFile', 'key']] as const) {
    const file = t.tlsFiles?.[field];
    if (file === undefined) continue;
    try {
      pem = { ...pem, [option]: readFileSync(resolve(file)) };
    } catch (error) {
      return { name, status: 'fail', finding: `${prefix}: cannot read ${tlsKey}.${field} ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`, fix: `correct ${tlsKey}.${field}, or make the file readable by the gateway's user` };
    }
  }
  try {
    const ms = await probeUpstream(t, pem);
    return { name, status: 'ok', finding: `${prefix} ${t.tls ? 'TLS handshake done' : 'connected'} in ${ms} ms` };
  } catch (error) {
    const { stage, cause } = error as { stage: 'tcp' | 'tls'; cause: unknown };
    const { reason, fix } = connectFailure(t, stage, cause, UPSTREAM_TIMEOUT_MS);
    return { name, status: 'fail', finding: `${prefix}: ${reason}`, fix };
  }
}

/**
 * TCP connect, then the TLS handshake when the target wants TLS; resolves with the milliseconds it
 * took, rejects with { stage, cause }. NATS sends its INFO line in the clear first and upgrades to
 * TLS after it (as nats.js does), so for NATS the handshake starts once that line has arrived.
 */
function probeUpstream(t: UpstreamTarget, pem: { ca?: Buffer; cert?: Buffer; key?: Buffer }): Promise<number> {
  return new Promise((resolveProbe, rejectProbe) => {
    const started = performance.now();
    const sockets: Socket[] = [];
    let stage: 'tcp' | 'tls' = 'tcp';
    let done = false;
    const finish = (error?: unknown) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      // The TLS socket first: it owns the TCP handle it wraps; destroying the TCP socket first
      // crashed Node 20.20 here (SIGSEGV) with several handshakes in flight.
      for (const s of sockets.reverse()) s.destroy();
      if (error === undefined) resolveProbe(Math.round(performance.now() - started));
      else rejectProbe({ stage, cause: error });
    };
    const timer = setTimeout(() => finish(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })), UPSTREAM_TIMEOUT_MS);
    const socket = connectTcp({ host: t.host, port: t.port });
    sockets.push(socket);
    socket.on('error', finish);
    const handshake = () => {
      stage = 'tls';
      const secure = connectTls({ socket, ...(serverName(t.host) === undefined ? {} : { servername: serverName(t.host) }), ...pem });
      sockets.push(secure);
      secure.on('error', finish);
      secure.once('secureConnect', () => finish());
    };
    socket.once('connect', () => {
      if (!t.tls) return finish();
      if (t.protocol === 'mqtt') return handshake();
      let info = '';
      const onData = (chunk: Buffer) => {
        info += chunk.toString('latin1');
        if (info.includes('\r\n')) {
          socket.off('data', onData);
          handshake();
        } else if (info.length > MAX_INFO_LINE_BYTES) {
          finish(new Error(`no NATS INFO line in the first ${MAX_INFO_LINE_BYTES} bytes: is ${t.host}:${t.port} a NATS server?`));
        }
      };
      socket.on('data', onData);
    });
  });
}
