/**
 * The hub's Prometheus metrics (DESIGN §10), `simptu_realtime_*`, on the common registry.
 * Label values are bounded (topic kinds, reasons, results), never topic names or tenants.
 * @see https://prometheus.io/docs/practices/naming/
 */
import type { Metrics } from '@simptu/common';

export function hubMetrics(m: Metrics) {
  const stages = m.histogram({
    name: 'realtime_delivery_stage_seconds',
    help:
      "Where an event of this instance's ingest spends its time: kafka (CloudEvent time → handed over by kafkajs), " +
      'store (→ numbered and published in Redis, its pub/sub message back), fanout (→ written to every local subscriber)',
    labelNames: ['stage'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  return {
    /**
     * `realtime_delivery_stage_seconds` by stage, labels bound once: observed three times per
     * event, and prom-client resolves (hashes) the labels of every `observe({stage}, v)` call.
     */
    stages: {
      kafka: stages.labels({ stage: 'kafka' }),
      store: stages.labels({ stage: 'store' }),
      fanout: stages.labels({ stage: 'fanout' }),
    },
    connections: m.gauge({ name: 'realtime_connections', help: 'Open WebSocket connections' }),
    connects: m.counter({
      name: 'realtime_connects_total',
      help: 'WebSocket upgrade attempts by result',
      labelNames: ['result'],
    }),
    joins: m.counter({
      name: 'realtime_joins_total',
      help: 'Channel joins by topic kind and result',
      labelNames: ['kind', 'result'],
    }),
    framesIn: m.counter({
      name: 'realtime_frames_in_total',
      help: 'Frames received by result',
      labelNames: ['result'],
    }),
    messagesOut: m.counter({ name: 'realtime_messages_out_total', help: 'Frames written to sockets' }),
    eventsStored: m.counter({
      name: 'realtime_events_stored_total',
      help: 'Kafka events numbered, stored and published to a topic stream (once per topic)',
    }),
    eventsDropped: m.counter({
      name: 'realtime_events_dropped_total',
      help: 'Kafka events not delivered, by reason',
      labelNames: ['reason'],
    }),
    coalesced: m.counter({
      name: 'realtime_frames_coalesced_total',
      help: 'Token frames merged into an earlier one for a slow client',
    }),
    slowDisconnects: m.counter({
      name: 'realtime_slow_client_disconnects_total',
      help: 'Clients disconnected because their send buffer exceeded the bound',
    }),
    gaps: m.counter({
      name: 'realtime_stream_gaps_total',
      help: 'Live stream gaps (missed pub/sub messages) answered with phx_error so the client rejoins and recovers',
    }),
    messagesSent: m.counter({
      name: 'realtime_client_messages_total',
      help: 'message:send results',
      labelNames: ['result'],
    }),
    ingestBatchRecords: m.histogram({
      name: 'realtime_ingest_batch_records',
      help: 'Kafka records per ingest batch (one partition, one pipelined Redis round trip)',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
    }),
    ingestBatchSeconds: m.histogram({
      name: 'realtime_ingest_batch_seconds',
      help: 'From a batch handed over by kafkajs to every event of it numbered, stored and published in Redis',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    }),
    latency: m.histogram({
      name: 'realtime_delivery_latency_seconds',
      help: 'From the CloudEvent time to the socket write',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    }),
  };
}

export type HubMetrics = ReturnType<typeof hubMetrics>;
