/**
 * Hands the agent's ephemeral stream events (token deltas, tool calls and results) of ALL runs to
 * Kafka through one queue: while one produce request is in flight, everything emitted meanwhile
 * waits and leaves together in the next request (one `sendBatch` per tenant).
 *
 * Why: the common `EventProducer` is idempotent with one request in flight, so N runs each
 * awaiting their own sends would queue N round trips behind each other — a first token waiting
 * for other conversations' acknowledgements. Batching keeps that wait at one request at most and
 * cuts the produce requests (and their CPU) per turn under load. Order is kept: the queue is
 * FIFO and requests go one after another, so a run's events (same key) stay in order.
 */
import type { CloudEvent, EventProducer, Logger } from '@simptu/common';

interface Pending {
  tenant: string;
  topic: string;
  event: CloudEvent;
  key: string;
  settle: (sent: boolean) => void;
}

export class StreamSender {
  readonly #producer: EventProducer;
  readonly #logger: Logger | undefined;
  readonly #maxBatch: number;
  #queue: Pending[] = [];
  #running = false;

  constructor(o: { producer: EventProducer; logger?: Logger; maxBatch?: number }) {
    this.#producer = o.producer;
    this.#logger = o.logger;
    this.#maxBatch = Math.max(1, o.maxBatch ?? 500);
  }

  /** Queues one event; resolves true once Kafka acknowledged it, false if it was dropped. */
  send(tenant: string, topic: string, event: CloudEvent, key: string): Promise<boolean> {
    return new Promise<boolean>((settle) => {
      this.#queue.push({ tenant, topic, event, key, settle });
      if (!this.#running) {
        this.#running = true;
        // after the current synchronous burst: a run's first events leave together
        queueMicrotask(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#maxBatch);
        const byTenant = new Map<string, Pending[]>();
        for (const p of batch) {
          const list = byTenant.get(p.tenant);
          if (list) list.push(p);
          else byTenant.set(p.tenant, [p]);
        }
        await Promise.all(
          [...byTenant].map(async ([tenant, list]) => {
            try {
              await this.#producer
                .forTenant(tenant)
                .sendBatch(list.map(({ topic, event, key }) => ({ topic, event, key })));
              for (const p of list) p.settle(true);
            } catch (err) {
              // Ephemeral: the authoritative reply goes through the outbox.
              this.#logger?.warn({ err, tenant, events: list.length }, 'agent stream events not sent');
              for (const p of list) p.settle(false);
            }
          }),
        );
      }
    } finally {
      this.#running = false;
    }
  }
}
