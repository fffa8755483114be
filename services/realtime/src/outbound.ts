/**
 * Per-socket outbound queue: back-pressure without letting one slow client delay anybody else.
 *
 * Frames go straight to the socket while its `bufferedAmount` (bytes `ws` has queued but the
 * kernel hasn't taken) is under `highWaterBytes`. Above it they wait here, and consecutive
 * `agent.token` frames of one session are merged (deltas concatenated, the newest `seq` and
 * `stream_seq` kept): a slow reader gets fewer, larger frames and the same text. When what
 * waits plus what `ws` buffers exceeds `maxBytes`, the client can't keep up at all and is
 * disconnected (`onOverflow`) rather than growing the server's memory without bound.
 *
 * Delivery to every other socket is independent: the hub never awaits a socket.
 * @see https://github.com/websockets/ws/blob/master/doc/ws.md#websocketbufferedamount
 */
import { encodeFrame, type Frame } from './protocol.ts';

export interface Sink {
  readonly bufferedAmount: number;
  send(data: string): void;
}

export interface OutboundOptions {
  /** queue (and coalesce) above this many buffered bytes; @default 64 KiB */
  highWaterBytes?: number;
  /** disconnect above this many buffered + queued bytes; @default 4 MiB */
  maxBytes?: number;
  /** retry interval while over the high-water mark; @default 20 ms */
  retryMs?: number;
  onOverflow: () => void;
  /** called with the number of frames merged away */
  onCoalesced?: (n: number) => void;
  /** called per frame written */
  onSent?: (frame: Frame) => void;
}

interface Item {
  frame: Frame;
  text: string;
  /** `<topic>|<session>` for mergeable token deltas */
  coalesceKey: string | undefined;
}

function coalesceKeyOf(f: Frame): string | undefined {
  if (f.event !== 'agent.token') return undefined;
  const s = f.payload.session_id;
  return typeof s === 'string' ? `${f.joinRef ?? ''}|${f.topic}|${s}` : undefined;
}

/** Merges token frame `b` into the earlier `a` (same key). */
export function mergeTokenFrames(a: Frame, b: Frame): Frame {
  const pa = a.payload;
  const pb = b.payload;
  return {
    ...b,
    payload: {
      ...pb,
      delta: String(pa.delta ?? '') + String(pb.delta ?? ''),
      coalesced: (typeof pa.coalesced === 'number' ? pa.coalesced : 1) + 1,
    },
  };
}

export class OutboundQueue {
  readonly #sink: Sink;
  readonly #o: Required<Omit<OutboundOptions, 'onCoalesced' | 'onSent'>> &
    Pick<OutboundOptions, 'onCoalesced' | 'onSent'>;
  readonly #items: Item[] = [];
  #queuedBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(sink: Sink, options: OutboundOptions) {
    this.#sink = sink;
    this.#o = { highWaterBytes: 64 * 1024, maxBytes: 4 * 1024 * 1024, retryMs: 20, ...options };
  }

  get queued(): number {
    return this.#items.length;
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /**
   * Sends or queues `frame`. `text`, when given, must be `encodeFrame(frame)`: the fan-out encodes
   * one event once for all its subscribers instead of once per socket.
   */
  push(frame: Frame, text?: string): void {
    if (this.#closed) return;
    if (this.#items.length === 0 && this.#sink.bufferedAmount < this.#o.highWaterBytes) {
      this.#write(frame, text ?? encodeFrame(frame));
      return;
    }
    const key = coalesceKeyOf(frame);
    const last = this.#items[this.#items.length - 1];
    if (key !== undefined && last && last.coalesceKey === key) {
      const merged = mergeTokenFrames(last.frame, frame);
      const text = encodeFrame(merged);
      this.#queuedBytes += text.length - last.text.length;
      last.frame = merged;
      last.text = text;
      this.#o.onCoalesced?.(1);
    } else {
      const encoded = text ?? encodeFrame(frame);
      this.#items.push({ frame, text: encoded, coalesceKey: key });
      this.#queuedBytes += encoded.length;
    }
    if (this.#queuedBytes + this.#sink.bufferedAmount > this.#o.maxBytes) {
      this.close();
      this.#o.onOverflow();
      return;
    }
    this.#schedule();
  }

  /** Writes what the socket takes now; reschedules while over the high-water mark. */
  flush(): void {
    this.#timer = undefined;
    while (!this.#closed && this.#items.length > 0 && this.#sink.bufferedAmount < this.#o.highWaterBytes) {
      const item = this.#items.shift()!;
      this.#queuedBytes -= item.text.length;
      this.#write(item.frame, item.text);
    }
    if (this.#items.length > 0) this.#schedule();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#items.length = 0;
    this.#queuedBytes = 0;
  }

  #write(frame: Frame, text: string): void {
    this.#sink.send(text);
    this.#o.onSent?.(frame);
  }

  #schedule(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setTimeout(() => this.flush(), this.#o.retryMs);
  }
}
