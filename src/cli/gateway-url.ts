/**
 * Where the commands that talk to a running gateway (topics, produce, consume, groups) find it:
 * `--gateway URL`, else EDGELOG_GATEWAY, else the default HTTP port on this machine.
 */
import { UsageError } from './usage-error.js';

export const DEFAULT_GATEWAY_URL = 'http://127.0.0.1:8080';

/** The `--gateway` and `--token` options' help lines, shared by every command that takes them. */
export const GATEWAY_OPTION_HELP = `  --gateway URL           The running gateway's HTTP address (default ${DEFAULT_GATEWAY_URL};
                          EDGELOG_GATEWAY).
  --token TOKEN           The gateway's admin token, when it has one (EDGELOG_ADMIN_TOKEN; the
                          environment keeps it out of the shell history and the process list).`;

/** The admin token to present: `--token`, else EDGELOG_ADMIN_TOKEN, else none. */
export function adminToken(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const token = flag ?? env['EDGELOG_ADMIN_TOKEN'];
  return token === undefined || token === '' ? undefined : token;
}

/** The gateway's base URL (http: or https:), from the flag, the environment or the default. */
export function gatewayUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): URL {
  const text = flag ?? env['EDGELOG_GATEWAY'] ?? DEFAULT_GATEWAY_URL;
  const from = flag === undefined ? (env['EDGELOG_GATEWAY'] === undefined ? 'the default' : 'EDGELOG_GATEWAY') : '--gateway';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${from} '${text}' is not a URL; give the gateway's HTTP address, e.g. ${DEFAULT_GATEWAY_URL}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${from} '${text}' must be an http:// or https:// address (the gateway's HTTP port), e.g. ${DEFAULT_GATEWAY_URL}`);
  }
  return url;
}

/** The WebSocket URL of an endpoint (`/consume`, `/produce`) on the gateway at `base`. */
export function webSocketUrl(base: URL, path: string): string {
  const url = new URL(path, base);
  url.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

/** The one line printed when the gateway cannot be reached, with what to check. */
export function unreachableMessage(base: URL, error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? (error as { cause?: NodeJS.ErrnoException } | undefined)?.cause?.code;
  const why = code ?? (error instanceof Error ? error.message : String(error));
  return `cannot reach the gateway at ${base.origin} (${why}): is it running (edgelog start), and is that its HTTP port? Set it with --gateway URL or EDGELOG_GATEWAY`;
}
