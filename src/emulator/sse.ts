/**
 * Server-sent event streams for the emulator: framing, keep-alive pings, and bounds.
 *
 * Framing follows what the official SDK's stream parser reads: every message has an `event:`
 * line (the parser skips messages without one) equal to the JSON payload's `type`, a single
 * `data:` line, and a blank line; `event: ping` messages are keep-alives the parser drops.
 *
 * An idle stream costs nothing: one shared timer on the injected clock pings every open stream
 * each interval and is not armed while no stream is open.
 */
import type { ServerResponse } from 'node:http';
import type { Clock } from './clock.ts';

export interface SseOptions {
  /** Keep-alive ping interval. Default 15 s. */
  readonly pingIntervalMs: number;
  /**
   * Bytes a stream may have queued for a client that does not read. Beyond it the stream is cut;
   * the client reconnects and reads what it missed from the event list. Default 8 MiB.
   */
  readonly maxBufferedBytes: number;
}
export const DEFAULT_SSE_OPTIONS: SseOptions = { pingIntervalMs: 15_000, maxBufferedBytes: 8 * 1024 * 1024 };

/** A handler's reply that opens an event stream instead of sending JSON. */
export class EventStreamReply {
  /** Called with the open stream; returns what to do when the stream closes. */
  readonly attach: (stream: EventStream) => () => void;
  constructor(attach: (stream: EventStream) => () => void) {
    this.attach = attach;
  }
}

export interface EventStream {
  /** Write one message whose `event:` line is the payload's type. */
  send(event: { type: string }): void;
  end(): void;
}

const PING = 'event: ping\ndata: {"type":"ping"}\n\n';

export class SseHub {
  readonly #streams = new Set<ServerResponse>();
  readonly #clock: Clock;
  readonly #options: SseOptions;
  #timer: unknown;

  constructor(clock: Clock, options: SseOptions = DEFAULT_SSE_OPTIONS) {
    this.#clock = clock;
    this.#options = options;
  }

  /** Answer 200 with event-stream headers flushed at once, so the client sees the stream open before any event. */
  open(res: ServerResponse): EventStream {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    this.#streams.add(res);
    res.once('close', () => this.#streams.delete(res));
    this.#arm();
    return {
      send: (event) => this.#write(res, `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`),
      end: () => {
        this.#streams.delete(res);
        if (!res.writableEnded) res.end();
      },
    };
  }

  get size(): number {
    return this.#streams.size;
  }

  close(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const res of this.#streams) res.destroy();
    this.#streams.clear();
  }

  #write(res: ServerResponse, chunk: string): void {
    if (res.destroyed || res.writableEnded) return;
    res.write(chunk);
    // A client that stops reading must not grow the emulator's memory without bound.
    if (res.writableLength > this.#options.maxBufferedBytes) {
      this.#streams.delete(res);
      res.destroy();
    }
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#streams.size === 0) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      for (const res of this.#streams) this.#write(res, PING);
      this.#arm();
    }, this.#options.pingIntervalMs);
  }
}
