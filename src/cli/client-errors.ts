/**
 * What `edgelog produce` and `edgelog consume` print when the client fails: the gateway's refusal
 * as it said it, or the one unreachable-gateway line the other commands print too.
 */
import { EdgelogClientError } from '../client/errors.js';
import { EdgelogError, type ErrorCode } from '../errors.js';
import { unreachableMessage } from './gateway-url.js';

/** A client error as the EdgelogError the `edgelog` command prints in one line and exits 1 on. */
export function commandError(base: URL, error: unknown): unknown {
  if (!(error instanceof EdgelogClientError)) return error;
  // Codes the client adds to the gateway's set (CONNECTION_LOST, ...) are printed as they are.
  const code = error.code as ErrorCode;
  // A system error (ECONNREFUSED, ENOTFOUND) gets the wording every command uses; an HTTP answer that is not a WebSocket keeps the client's.
  const systemCode = (error.cause as NodeJS.ErrnoException | undefined)?.code;
  if (error.code === 'GATEWAY_UNREACHABLE' && typeof systemCode === 'string') return new EdgelogError(code, unreachableMessage(base, error.cause));
  // The gateway's refusal arrives as a WebSocket close reason, cut at 123 bytes (RFC 6455 §5.5)
  // before it says how to give the token: say what this command takes instead of half a sentence.
  if (error.code === 'AUTH_FAILED') {
    return new EdgelogError(code, `the gateway at ${base.origin} refused the connection without its admin token (or with a wrong one): give it with --token TOKEN or EDGELOG_ADMIN_TOKEN (config key admin.token of the gateway)`);
  }
  return new EdgelogError(code, error.message);
}
