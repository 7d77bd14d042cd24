import { onTestFinished } from 'vitest';
import { createTcpProxy, type TcpProxy } from './tcp-proxy-core.js';

export type { TcpProxy } from './tcp-proxy-core.js';

/**
 * A TCP proxy on 127.0.0.1 (port 0) in front of `targetPort`, closed when the test finishes. Tests
 * use it to cut the link (`cut`, `cutAfterBytes`) or make the upstream unreachable (`refuse`).
 */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const proxy = await createTcpProxy(targetPort);
  onTestFinished(() => proxy.close());
  return proxy;
}
