import { onTestFinished } from 'vitest';
import WebSocket from 'ws';

/** An answer frame of WebSocket ingest (docs/ws-ingest.md), as the tests read it. */
export interface Answer {
  type: 'auth-ok' | 'ack' | 'error';
  id?: string | number;
  deviceId?: string;
  anonymous?: boolean;
  limits?: { maxReadingsPerFrame: number; maxFrameBytes: number };
  code?: string;
  message?: string;
  retryable?: boolean;
  results?: Result[];
}

export type Result = { topic: string; partition: number; offset: number; deadLetter?: string } | { error: { code: string; message: string; retryable: boolean } };

/** A raw `ws` client of /ingest that keeps every answer in order; closed when the test finishes. */
export class IngestClient {
  readonly answers: Answer[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private read = 0;
  private waiters = new Set<() => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.answers.push(JSON.parse(data.toString()) as Answer);
      for (const w of this.waiters) w();
    });
    ws.on('error', () => {}); // the close event says what happened
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const w of this.waiters) w();
      }),
    );
  }

  static async connect(port: number, path = '/ingest'): Promise<IngestClient> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    const client = new IngestClient(ws);
    onTestFinished(() => ws.terminate());
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  /** Connects and authenticates; resolves with the auth answer (auth-ok or error). */
  static async authed(port: number, deviceId: string, token?: string): Promise<{ client: IngestClient; answer: Answer }> {
    const client = await IngestClient.connect(port);
    client.send({ type: 'auth', deviceId, ...(token === undefined ? {} : { token }) });
    return { client, answer: await client.next() };
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame));
  }

  /** The next answer not read yet; fails after `timeoutMs` or if the connection closes first. */
  async next(timeoutMs = 10_000): Promise<Answer> {
    await this.waitFor(() => this.answers.length > this.read, 'an answer', timeoutMs);
    return this.answers[this.read++]!;
  }

  /** Sends `frame` and returns its answer. */
  async request(frame: unknown): Promise<Answer> {
    this.send(frame);
    return this.next();
  }

  /** Waits until `count` answers have arrived in all (read or not). */
  async waitForAnswers(count: number, timeoutMs = 30_000): Promise<void> {
    await this.waitFor(() => this.answers.length >= count, `${count} answers (have ${this.answers.length})`, timeoutMs);
  }

  private waitFor(done: () => boolean, what: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (done()) finish(resolve);
        else if (this.ws.readyState === WebSocket.CLOSED) finish(() => reject(new Error(`connection closed while waiting for ${what}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))), timeoutMs);
      const finish = (then: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        then();
      };
      this.waiters.add(check);
      check();
    });
  }
}
