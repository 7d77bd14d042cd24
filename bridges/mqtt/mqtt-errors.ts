import { ReasonCodes } from 'mqtt';
import { EdgelogError } from '../../src/errors.js';

/**
 * CONNACK answers that mean "try again later", not "this configuration is refused": MQTT 3.1.1
 * return code 3 (server unavailable, §3.2.2.3) and MQTT 5 0x88 server unavailable, 0x89 server
 * busy, 0x8B shutting down, 0x9F connection rate exceeded (§3.2.2.2). Only for CONNACK: the same
 * numbers mean other things in a PUBACK.
 */
const CONNACK_TRANSIENT = new Set([3, 0x88, 0x89, 0x8b, 0x9f]);

/** Error codes of Node's TLS layer: a certificate the client will not trust, or a handshake the server refused. */
const TLS_ERROR = /^ERR_SSL_|^ERR_TLS_|CERT|^UNABLE_TO_|SELF_SIGNED|^HOSTNAME_MISMATCH$/;

/** What to check, by CONNACK code (3.1.1 and 5 numbers do not overlap above 5). */
function connackHint(code: number): string {
  if (code === 4 || code === 0x86) return 'check the bridge username and password';
  // Mosquitto answers a wrong password with 'not authorized' too.
  if (code === 5 || code === 0x87) return "check the bridge username and password or client certificate, and that the broker's ACL allows this client id and user";
  if (code === 2 || code === 0x85) return 'check the bridge clientId';
  if (code === 1 || code === 0x84) return 'check protocolVersion: the broker does not speak it';
  return "see the broker's log";
}

/** Maps a failure of MQTT.js while connecting to the broker at `target` (no credentials in it). */
export function connectError(target: string, error: Error | undefined, protocolVersion: 4 | 5): EdgelogError {
  const code = (error as (Error & { code?: unknown }) | undefined)?.code;
  if (typeof code === 'number') {
    // MQTT.js ErrorWithReasonCode from handlers/connack.js: the broker answered and refused.
    const name = ReasonCodes[code as keyof typeof ReasonCodes] ?? 'unknown reason';
    const what = `MQTT broker ${target} refused the connection (CONNACK ${protocolVersion === 5 ? 'reason' : 'return'} code 0x${code.toString(16)}: ${name})`;
    if (CONNACK_TRANSIENT.has(code)) return new EdgelogError('UPSTREAM_UNAVAILABLE', `${what}: it will be retried`, { cause: error });
    return new EdgelogError('UPSTREAM_REFUSED', `${what}: ${connackHint(code)}`, { cause: error });
  }
  if (typeof code === 'string' && TLS_ERROR.test(code)) {
    // OpenSSL's messages carry its internal error stack; `reason` is the readable part.
    const reason = (error as Error & { reason?: unknown }).reason;
    return new EdgelogError(
      'UPSTREAM_REFUSED',
      `TLS with MQTT broker ${target} failed (${code}: ${typeof reason === 'string' ? reason : error?.message}): check tls.caFile (the CA that signed the broker's certificate), the broker's host name, and the client certificate and key`,
      { cause: error },
    );
  }
  if (error?.message === 'connack timeout') {
    return new EdgelogError('UPSTREAM_UNAVAILABLE', `MQTT broker ${target} did not answer CONNECT in time: check the link and the address`, { cause: error });
  }
  const detail = error === undefined ? 'the connection closed before CONNACK' : typeof code === 'string' ? `${code}: ${error.message}` : error.message;
  return new EdgelogError('UPSTREAM_UNAVAILABLE', `cannot reach MQTT broker ${target} (${detail}): check the link, the address and the port`, { cause: error });
}

/** Maps a PUBACK with MQTT 5 reason code ≥ 0x80 (MQTT.js ErrorWithReasonCode) or a lost message. */
export function publishError(target: string, topic: string, error: Error): EdgelogError {
  const code = (error as Error & { code?: unknown }).code;
  if (typeof code === 'number' && code >= 0x80) {
    const name = ReasonCodes[code as keyof typeof ReasonCodes] ?? 'unknown reason';
    return new EdgelogError('UPSTREAM_REFUSED', `MQTT broker ${target} refused a message to topic '${topic}' (PUBACK reason code 0x${code.toString(16)}: ${name}): check the broker's ACL and limits`, {
      cause: error,
    });
  }
  return new EdgelogError('UPSTREAM_UNAVAILABLE', `message to topic '${topic}' on MQTT broker ${target} was not acknowledged: ${error.message}`, { cause: error });
}
