/**
 * The commands' way to the gateway's admin API (docs/api.md): one fetch per call with a timeout,
 * JSON answers, and every failure turned into one clear EdgelogError line (the `edgelog` command
 * prints it and exits 1).
 */
import { EdgelogError, type ErrorCode } from '../errors.js';
import { unreachableMessage } from './gateway-url.js';

/** Admin calls are small and answered at once; a gateway that takes longer is stuck or behind a dead link. */
export const DEFAULT_API_TIMEOUT_MS = 10_000;

/**
 * A misdirected --gateway can answer with anything; the API's largest answers (a topic of 4,096
 * partitions, a long group list) stay far below this.
 */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/** Calls the admin API of the gateway at `base` (from {@link gatewayUrl}). */
export class ApiClient {
  constructor(
    readonly base: URL,
    /** The gateway's admin token (adminToken()), sent as `Authorization: Bearer`. */
    private readonly token: string | undefined = undefined,
    private readonly timeoutMs = DEFAULT_API_TIMEOUT_MS,
  ) {}

  get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('POST', path, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.call<T>('DELETE', path);
  }

  /**
   * One request; resolves to the parsed answer of a 2xx. Rejects with the gateway's own error code
   * and message, or GATEWAY_UNREACHABLE when no edgelog gateway answered in time.
   */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = new URL(path, this.base);
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.token === undefined ? {} : { authorization: `Bearer ${this.token}` }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await readBounded(res);
    } catch (error) {
      if (error instanceof EdgelogError) throw error;
      if ((error as Error)?.name === 'TimeoutError') {
        throw new EdgelogError(
          'GATEWAY_UNREACHABLE',
          `the gateway at ${this.base.origin} did not answer ${method} ${url.pathname} within ${this.timeoutMs / 1000} s: is it overloaded or stuck? Its log says why`,
        );
      }
      throw new EdgelogError('GATEWAY_UNREACHABLE', unreachableMessage(this.base, error));
    }
    const parsed = parseJson(text);
    if (res.ok && parsed.ok) return parsed.value as T;
    const error = (parsed.ok ? (parsed.value as { error?: { code?: unknown; message?: unknown } } | null)?.error : undefined) ?? undefined;
    if (typeof error?.code === 'string' && typeof error.message === 'string') {
      // The gateway answers with codes of the same closed set; one from a newer gateway is printed as it is.
      throw new EdgelogError(error.code as ErrorCode, error.message);
    }
    throw new EdgelogError(
      'GATEWAY_UNREACHABLE',
      `${this.base.origin} answered ${method} ${url.pathname} with HTTP ${res.status} but not with the edgelog API's JSON: is that the gateway's HTTP port? Set it with --gateway URL or EDGELOG_GATEWAY`,
    );
  }
}

/** A path segment for a topic or group name (names are validated by the gateway). */
export function segment(name: string): string {
  return encodeURIComponent(name);
}

async function readBounded(res: Response): Promise<string> {
  if (res.body === null) return '';
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  // Leaving the loop early cancels the stream: the rest is never read.
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    bytes += chunk.length;
    if (bytes > MAX_RESPONSE_BYTES) break;
    chunks.push(chunk);
  }
  if (bytes > MAX_RESPONSE_BYTES) {
    throw new EdgelogError('GATEWAY_UNREACHABLE', `the answer from ${res.url} is over ${MAX_RESPONSE_BYTES} bytes, far more than the edgelog API sends: is --gateway pointing at the gateway?`);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}
