import { expect } from 'vitest';
import { EdgelogError } from '../../src/index.js';

/** The EdgelogError `fn` fails with; fails the test when it succeeds or throws something else. */
export async function refusal(fn: () => unknown): Promise<EdgelogError> {
  try {
    await fn();
  } catch (error) {
    expect(error).toBeInstanceOf(EdgelogError);
    return error as EdgelogError;
  }
  throw new Error('expected a refusal');
}
