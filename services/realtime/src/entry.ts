/**
 * A stream entry's content as it rests in Redis (history) and travels between hub instances
 * (pub/sub). Two forms, told apart by their first character:
 *
 * - **encrypted** (`v1.…`): the whole payload encrypted with the tenant's data key and bound
 *   (associated data) to the topic key and event id: an entry copied to another topic or tenant
 *   doesn't decrypt. Every event whose data has anything sensitive in clear.
 * - **sealed** (`{…}`): the agent's stream events (`agent.token`, `agent.tool_call`,
 *   `agent.tool_result`) whose content is all in `payload_enc` — already ciphertext under the
 *   tenant's key, bound to the event id by the agent (docs/agent.md) — are stored as they came
 *   from Kafka, with no more in clear than the Kafka record had (ids, seq, tool name). The hub
 *   neither decrypts nor re-encrypts them on ingest (an AES-GCM decryption, an encryption with
 *   its random nonce and a JSON round trip per event — most of the ingest's CPU at 4,000
 *   tokens/s, docs/benchmarks.md "Realtime"); each instance decrypts `payload_enc` once when it
 *   delivers the entry. Decoding checks what the encrypted form's binding guaranteed: the event
 *   id is the entry's, the topic is one the event routes to, and `payload_enc` decrypts under
 *   the tenant's key for that event id (a copied entry or a foreign tenant's doesn't).
 */
import type { FieldCipher, FieldLocation } from '@simptu/common';
import { decryptStream, isSealedStreamEvent, streamLocation, topicsOf } from './events.ts';
import { splitTopicKey } from './topics.ts';

export interface EntryPayload {
  /** channel event name, e.g. `agent.token` */
  event: string;
  data: Record<string, unknown>;
  /** the CloudEvent's `time` (for the Kafka → socket latency) */
  time: string;
  /** the CloudEvent's id */
  id: string;
}

export function entryLocation(key: string, eventId: string): FieldLocation {
  return { table: 'realtime', column: 'stream', rowId: `${key}|${eventId}` };
}

/** The encrypted form (any event). */
export function encodeEntry(cipher: FieldCipher, key: string, eventId: string, p: EntryPayload): string {
  return cipher.encryptText(JSON.stringify(p), entryLocation(key, eventId));
}

/**
 * The sealed form of a stream event as it came (`payload_enc` still encrypted), or undefined
 * when its data doesn't qualify (`isSealedStreamEvent`).
 */
export function sealEntry(p: EntryPayload): string | undefined {
  return isSealedStreamEvent(p.event, p.data) ? JSON.stringify(p) : undefined;
}

/** Either form → what clients get (decrypted). Throws when it doesn't decode or belong here. */
export function decodeEntry(cipher: FieldCipher, key: string, eventId: string, data: string): EntryPayload {
  if (!data.startsWith('{'))
    return JSON.parse(cipher.decryptText(data, entryLocation(key, eventId))) as EntryPayload;
  const p = JSON.parse(data) as Partial<EntryPayload>;
  const d = p.data;
  if (
    p.id !== eventId ||
    typeof p.event !== 'string' ||
    typeof p.time !== 'string' ||
    typeof d !== 'object' ||
    d === null ||
    !isSealedStreamEvent(p.event, d) ||
    !topicsOf(p.event, d).includes(splitTopicKey(key).topic)
  )
    throw new TypeError('sealed stream entry does not belong here');
  const out = decryptStream(p.event, d, (text) => cipher.decryptText(text, streamLocation(eventId)));
  if (!out) throw new TypeError('sealed stream entry does not decrypt');
  return { event: p.event, data: out, time: p.time, id: eventId };
}
