/**
 * A stream entry's content, encrypted with the tenant's data key and bound (associated data)
 * to the topic key and event id: an entry copied to another topic or tenant doesn't decrypt.
 */
import type { FieldCipher, FieldLocation } from '@simptu/common';

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

export function encodeEntry(cipher: FieldCipher, key: string, eventId: string, p: EntryPayload): string {
  return cipher.encryptText(JSON.stringify(p), entryLocation(key, eventId));
}

export function decodeEntry(cipher: FieldCipher, key: string, eventId: string, data: string): EntryPayload {
  return JSON.parse(cipher.decryptText(data, entryLocation(key, eventId))) as EntryPayload;
}
