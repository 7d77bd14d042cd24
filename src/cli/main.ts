/**
 * The `edgelog` command. People and scripts rely on its names (DESIGN.md, "Command-line contract").
 * Errors are printed as one clear line and exit non-zero; no stack trace reaches the user.
 */
import { parseArgs } from 'node:util';
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { EdgelogError } from '../errors.js';
import { loadConfig } from '../config.js';
import { Gateway } from '../gateway.js';
import { UsageError } from './usage-error.js';

const USAGE = `Usage: edgelog <command> [options]

Commands:
  start                 Run the gateway in the foreground until SIGTERM or SIGINT.
  devices               Manage the device registry: add, list, hash (edgelog devices --help).
  topics                The running gateway's topics: list, create, describe, delete
                        (edgelog topics --help).
  groups                Its consumer groups: list, describe (with lag), reset-offsets, delete
                        (edgelog groups --help).
  bridges [NAME]        Its upstream bridges: connection, backlog, throughput, errors
                        (edgelog bridges --help).
  produce TOPIC         Send stdin's lines to TOPIC, one record each (edgelog produce --help).
  consume TOPIC         Print TOPIC's records as they arrive (edgelog consume --help).
  doctor                Check this machine for a gateway: config, disk, clock, ports, upstreams
                        (edgelog doctor --help).

Options for start (each overrides the config file and the EDGELOG_* environment):
  --config FILE         A YAML config file; config/edgelog.yaml lists every key with its default.
                        Without one, the embedded defaults apply.
  --data-dir DIR        Where the commit log lives (default ./data; EDGELOG_DATA_DIR).
  --mqtt-port N         MQTT 3.1.1 over TCP (default 1883; 0 picks a free port, logged at start;
                        EDGELOG_MQTT_PORT).
  --http-port N         HTTP: MQTT over WebSocket at /mqtt, WebSocket ingest at /ingest,
                        consumers at /consume, producers at /produce, the admin API at /api
                        (default 8080; 0 picks a free port; EDGELOG_HTTP_PORT).
  --allow-anonymous     Accept clients without credentials from the network, not only from
                        loopback (EDGELOG_ALLOW_ANONYMOUS=true).
  -h, --help            Show this help.

Devices publish to devices/{deviceId}/{stream}; each reading goes to log topic {stream},
keyed by {deviceId}, and a QoS 1 PUBACK is sent only once it is on disk.

topics, groups, bridges, produce and consume talk to a running gateway at --gateway URL (default
http://127.0.0.1:8080; EDGELOG_GATEWAY): from the gateway's own machine, or from anywhere with
--token (EDGELOG_ADMIN_TOKEN) when the gateway has an admin token (config key admin.token).

The dashboard is at the gateway's HTTP address (http://127.0.0.1:8080/ by default); metrics for
Prometheus at /metrics, /healthz and /readyz for supervisors. The log is JSON lines, or readable
lines at a terminal (EDGELOG_LOG_FORMAT=auto|json|pretty, EDGELOG_LOG_LEVEL=info|debug|warn).
`;

function fail(message: string, code = 2): never {
  process.stderr.write(`edgelog: ${message}\n`);
  process.exit(code);
}

/** How the log is written: JSON lines for journald and log shippers, readable lines for a person at a terminal. */
const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;

function makeLogger(): Logger {
  const level = process.env['EDGELOG_LOG_LEVEL'] ?? 'info';
  const format = process.env['EDGELOG_LOG_FORMAT'] ?? 'auto';
  if (!(LOG_FORMATS as readonly string[]).includes(format)) throw new UsageError(`EDGELOG_LOG_FORMAT must be one of ${LOG_FORMATS.join(', ')}, got '${format}'`);
  if (format === 'json' || (format === 'auto' && process.stdout.isTTY !== true)) return pino({ level });
  // sync: a line is on the terminal before the next one is built; a terminal is slow anyway and lines must not be lost at exit.
  return pino({ level }, pretty({ sync: true, singleLine: true, colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
}

async function start(argv: string[]): Promise<void> {
  let values: { config?: string; 'data-dir'?: string; 'mqtt-port'?: string; 'http-port'?: string; 'allow-anonymous'?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        'data-dir': { type: 'string' },
        'mqtt-port': { type: 'string' },
        'http-port': { type: 'string' },
        'allow-anonymous': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const config = loadConfig({
    ...(values.config === undefined ? {} : { file: values.config }),
    env: process.env,
    flags: { dataDir: values['data-dir'], 'mqtt.port': values['mqtt-port'], 'http.port': values['http-port'], allowAnonymous: values['allow-anonymous'] },
  });
  const logger = makeLogger();
  const gateway = await Gateway.start(config, logger);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      void gateway.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (command === 'start') return start(rest);
  // Loaded on demand: `start` does not need it.
  if (command === 'devices') return (await import('./devices.js')).devices(rest);
  if (command === 'topics') return (await import('./topics.js')).topics(rest);
  if (command === 'groups') return (await import('./groups.js')).groups(rest);
  if (command === 'bridges') return (await import('./bridges.js')).bridges(rest);
  if (command === 'produce') return (await import('./produce.js')).produce(rest);
  if (command === 'consume') return (await import('./consume.js')).consume(rest);
  if (command === 'doctor') {
    // The report is printed; exit 1 tells scripts that a check failed.
    if (!(await (await import('./doctor.js')).doctor(rest))) process.exit(1);
    return;
  }
  throw new UsageError(`unknown command '${command}': the commands are start, devices, topics, groups, bridges, produce, consume and doctor\n\n${USAGE}`);
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error: unknown) => {
    if (error instanceof UsageError) fail(error.message);
    if (error instanceof EdgelogError) fail(`${error.message} (${error.code})`, 1);
    fail(`unexpected error: ${(error as Error)?.message ?? String(error)}`, 1);
  },
);
