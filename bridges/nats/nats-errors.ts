import { JetStreamApiError } from '@nats-io/jetstream';
import { AuthorizationError, ConnectionError, RequestError, TimeoutError, UserAuthenticationExpiredError } from '@nats-io/transport-node';
import { EdgelogError } from '../../src/errors.js';

/**
 * Socket error codes of a link or server that is down or unreachable: the condition clears by
 * itself. Any other coded error during connect (a certificate check, a TLS alert) is a refusal.
 */
const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

/**
 * Maps a failure of connect() (the client's own, or a JetStream API call made while connecting)
 * to UPSTREAM_UNAVAILABLE (unreachable, timed out, dropped) or UPSTREAM_REFUSED (authentication,
 * TLS, JetStream's answer). The message names the servers and what to check.
 */
export function natsConnectError(error: unknown, target: string): EdgelogError {
  if (error instanceof EdgelogError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof AuthorizationError || error instanceof UserAuthenticationExpiredError) {
    return new EdgelogError('UPSTREAM_REFUSED', `NATS server ${target} refused the login (${message}): check the bridge's user/pass or token`, { cause: error });
  }
  if (error instanceof TimeoutError) {
    return new EdgelogError('UPSTREAM_UNAVAILABLE', `NATS server ${target} did not answer in time: check the link and the server's address`, { cause: error });
  }
  const refusal = jetStreamRefusal(error, target);
  if (refusal !== undefined) return refusal;
  const code = errorCode(error);
  if (code !== undefined && NETWORK_ERROR_CODES.has(code)) {
    return new EdgelogError('UPSTREAM_UNAVAILABLE', `cannot reach NATS server ${target} (${code}): check the link, the address and that the server runs`, { cause: error });
  }
  if (code !== undefined || /tls|certificate|ssl/i.test(message)) {
    return new EdgelogError('UPSTREAM_REFUSED', `TLS with NATS server ${target} failed (${code ?? message}): check the bridge's tls.caFile, certFile and keyFile and the server's tls settings`, { cause: error });
  }
  if (error instanceof ConnectionError) {
    return new EdgelogError('UPSTREAM_UNAVAILABLE', `cannot reach NATS server ${target} (${message}): check the link, the address and that the server runs`, { cause: error });
  }
  return new EdgelogError('UPSTREAM_UNAVAILABLE', `connecting to NATS server ${target} failed: ${message}`, { cause: error });
}

/** JetStream's refusals of an API call: an error answer, or no JetStream answering at all. */
function jetStreamRefusal(error: unknown, target: string): EdgelogError | undefined {
  if (error instanceof JetStreamApiError) {
    const api = error.apiError();
    return new EdgelogError(
      'UPSTREAM_REFUSED',
      `JetStream at ${target} refused the stream setup: ${api.description} (code ${api.code}, err_code ${api.err_code}): check the bridge's stream setting and the central side's streams`,
      { cause: error },
    );
  }
  // The client's JetStreamNotEnabled (a JetStream API request nobody answered) is not exported: match its name.
  if ((error instanceof Error && error.name === 'JetStreamNotEnabled') || (error instanceof RequestError && error.isNoResponders())) {
    return new EdgelogError(
      'UPSTREAM_REFUSED',
      `no JetStream answered at ${target}: JetStream is not enabled for this account, or the cluster has no meta leader yet`,
      { cause: error },
    );
  }
  if (error instanceof RequestError) {
    return new EdgelogError('UPSTREAM_UNAVAILABLE', `JetStream at ${target} did not answer the stream setup: ${error.message}`, { cause: error });
  }
  return undefined;
}

/** The error's own `code` or its cause's (Node's socket and TLS errors carry one). */
function errorCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 3; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}
