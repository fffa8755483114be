/**
 * Kafka for the API (DESIGN §6): one idempotent `EventProducer`, an `OutboxRelay` per database
 * (the platform database for shared tenants, one per dedicated database) publishing the
 * tenants' outbox rows, the agent-replies consumer and the cache-invalidation consumer of the
 * domain topics (consumers/domain-events.ts). The tenant set comes from the registry
 * (`active` tenants) and is refreshed periodically, so a tenant provisioned while the API runs is
 * picked up without a restart. Started when the app is ready, stopped on close (relays finish
 * their batch; consumers leave their groups).
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Kafka } from 'kafkajs';
import { createKafka, EventProducer, OutboxRelay, type Logger, type TenantDbRef } from '@simptu/common';
import { AgentRepliesConsumer } from '../consumers/agent-replies.ts';
import { DomainEventsConsumer } from '../consumers/domain-events.ts';
import type { TenantInfo } from '../types.ts';

export interface EventsPluginOptions {
  brokers: string[];
  clientId: string;
  groupPrefix: string;
  relay: boolean;
  /** run the agent-replies and the cache-invalidation (domain events) consumers */
  consumers: boolean;
  tenantRefreshMs: number;
  /** outbox relay fallback poll; @default 1000 */
  relayPollMs?: number;
}

export interface ApiEvents {
  kafka: Kafka;
  producer: EventProducer;
  /** re-reads the active tenants and aligns relays and consumers (also runs periodically) */
  refresh(): Promise<void>;
  /** one relay pass over every tenant now (tests, tools) */
  relayNow(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    events: ApiEvents;
  }
}

const ref = (t: TenantInfo): TenantDbRef => ({ name: t.name, schema: t.schema, role: t.role });

export default fp(
  async (app: FastifyInstance, opts: EventsPluginOptions) => {
    const logger = app.log as unknown as Logger;
    const kafka = createKafka({ clientId: opts.clientId, brokers: opts.brokers, logger });
    const producer = new EventProducer({ kafka });
    const relays = new Map<string, { relay: OutboxRelay; tenants: TenantDbRef[] }>();
    const replies = opts.consumers
      ? new AgentRepliesConsumer({
          kafka,
          groupPrefix: opts.groupPrefix,
          ciphers: app.keyrings,
          poolFor: (t) => app.dbFor(t),
          logger,
        })
      : undefined;
    const domain = opts.consumers
      ? new DomainEventsConsumer({ kafka, groupPrefix: opts.groupPrefix, redis: app.redis, logger })
      : undefined;
    let timer: NodeJS.Timeout | undefined;
    let closing = false;

    const refresh = async (): Promise<void> => {
      const tenants = await app.tenantRegistry.active();
      if (opts.relay) {
        const byDb = new Map<string, TenantInfo[]>();
        for (const t of tenants) byDb.set(t.database, [...(byDb.get(t.database) ?? []), t]);
        for (const [db, entry] of relays) entry.tenants = (byDb.get(db) ?? []).map(ref);
        for (const [db, list] of byDb) {
          if (relays.has(db) || closing) continue;
          const entry = { tenants: list.map(ref), relay: undefined as unknown as OutboxRelay };
          entry.relay = new OutboxRelay({
            pool: app.dbFor(list[0]!),
            producer,
            ciphers: app.keyrings,
            tenants: () => entry.tenants,
            logger,
            metrics: app.metrics,
            // this process's own events leave right after COMMIT (outbox.ts, direct publishing)
            direct: true,
            ...(opts.relayPollMs ? { pollIntervalMs: opts.relayPollMs } : {}),
          });
          relays.set(db, entry);
          entry.relay.start();
        }
      }
      if (closing) return;
      await Promise.all([replies?.sync(tenants), domain?.sync(tenants)]);
    };

    const tick = () => {
      timer = setTimeout(() => {
        refresh()
          .catch((err: unknown) => app.log.warn({ err }, 'event plumbing refresh failed; retrying'))
          .finally(() => {
            if (!closing) tick();
          });
      }, opts.tenantRefreshMs);
      timer.unref();
    };

    app.decorate('events', {
      kafka,
      producer,
      refresh,
      async relayNow() {
        await Promise.all([...relays.values()].map((e) => e.relay.relayAll()));
      },
    } satisfies ApiEvents);

    app.addHook('onReady', async () => {
      // Not awaited: joining consumer groups takes seconds, and Kafka may be down at start — the
      // API serves meanwhile (the outbox keeps events) and the periodic refresh retries.
      // `app.events.refresh()` resolves once aligned (tests await it).
      void refresh().catch((err: unknown) => app.log.warn({ err }, 'event plumbing not started; retrying'));
      tick();
    });
    app.addHook('onClose', async () => {
      closing = true;
      clearTimeout(timer);
      await Promise.all([...relays.values()].map((e) => e.relay.stop()));
      await Promise.all([replies?.stop(), domain?.stop()]);
      await producer.disconnect();
    });
  },
  {
    name: 'simptu-events',
    fastify: '5.x',
    dependencies: ['simptu-db', 'simptu-redis', 'simptu-registry', 'simptu-crypto', 'simptu-observability'],
  },
);
