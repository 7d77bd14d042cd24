import { EdgelogError } from '../src/errors.js';

// devices/ imports src/errors.js (a leaf module: the shared error vocabulary) rather than
// src/index.js: the simulator uses these modules and must not load the LMDB binding.

/**
 * A device profile is not valid: a missing or out-of-range field, an unknown payload format.
 * `source` names the file (or "inline") and `path` the offending JSON path.
 */
export class ProfileError extends EdgelogError {
  override name = 'ProfileError';
  readonly source: string;
  readonly path: string;
  constructor(source: string, path: string, detail: string, options?: { cause?: unknown }) {
    super('INVALID_PROFILE', `invalid device profile ${source}: ${path}: ${detail}`, options);
    this.source = source;
    this.path = path;
  }
}

/**
 * A payload does not decode under its device's profile. The gateway branches on this class to send
 * the message to the dead-letter topic with `message` as the reason (DESIGN "Nothing is lost silently").
 */
export class PayloadError extends EdgelogError {
  override name = 'PayloadError';
  readonly profile: string;
  readonly stream: string;
  constructor(profile: string, stream: string, detail: string) {
    super('INVALID_PAYLOAD', `payload for profile '${profile}' stream '${stream}' does not decode: ${detail}`);
    this.profile = profile;
    this.stream = stream;
  }
}
