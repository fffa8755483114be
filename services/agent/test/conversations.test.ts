/**
 * Scripted conversations through Kafka with the builtin model, one tenant per business type,
 * all served by ONE pooled runtime: message in → streamed tokens out → real booking rows →
 * domain events; reschedule, cancel, handoff and back; English and Romanian; checkpoints
 * encrypted in the tenant schema.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDays, formatZoned, localDateOf, setSessionState } from '@simptu/common';
import { seedCatalog, startAgentHarness, waitFor, type AgentHarness } from './support.ts';

const TZ = 'Europe/Bucharest';
let h: AgentHarness;

function tomorrow(): string {
  return addDays(localDateOf(new Date(), TZ), 1);
}

beforeAll(async () => {
  h = await startAgentHarness([
    { businessType: 'dental', timezone: TZ, displayName: 'Smile Dental' },
    { businessType: 'gym', timezone: TZ, displayName: 'Iron Gym', locale: 'ro-RO' },
    { businessType: 'hotel', timezone: TZ, displayName: 'Hotel Aurora' },
  ]);
  const [dental, gym, hotel] = h.tenants;
  await seedCatalog(dental!, {
    kind: 'treatment',
    services: [
      { name: 'Cleaning', durationMinutes: 30, priceCents: 20000 },
      { name: 'Whitening', durationMinutes: 60, priceCents: 90000 },
    ],
    resource: { kind: 'chair', name: 'Chair 1' },
  });
  await seedCatalog(gym!, {
    kind: 'class',
    services: [{ name: 'Yoga', durationMinutes: 60, priceCents: 5000 }],
    resource: { kind: 'studio', name: 'Studio A' },
  });
  await seedCatalog(hotel!, {
    kind: 'room_type',
    services: [{ name: 'Double Room', durationMinutes: 1440, priceCents: 45000 }],
    resource: { kind: 'room', name: 'Room 101' },
    hours: { opens: '00:00', closes: '24:00' },
  });
  await dental!.adminQuery(
    `INSERT INTO ${dental!.table('knowledge_base')} (question, answer, keywords) VALUES
       ('Do you have parking?', 'Yes, free parking behind the clinic.', '{parking,car}'),
       ('When are you open?', 'Every day 08:00-20:00.', '{hours,open}')`,
  );
}, 240_000);

afterAll(async () => {
  await h?.close();
}, 120_000);

async function bookingsOf(t: AgentHarness['tenants'][number], customerId: string) {
  const { rows } = await t.adminQuery<{ id: string; status: string; start: Date; idempotency_key: string }>(
    `SELECT id, status, lower(during) AS start, idempotency_key FROM ${t.table('bookings')} WHERE customer_id = $1 ORDER BY created_at`,
    [customerId],
  );
  return rows;
}

describe('dental, English: book → reschedule → cancel, FAQ, streamed tokens', () => {
  it('books a cleaning from a chat message and streams the answer', async () => {
    const t = h.tenants[0]!;
    const { sessionId, customerId } = await h.newConversation(t);

    const hi = await h.say(t, sessionId, 'Hello!');
    expect(await h.reply(t, hi)).toMatch(/assistant of Smile Dental/);

    const prices = await h.say(t, sessionId, 'What are your prices?');
    const p = await h.reply(t, prices);
    expect(p).toMatch(/Cleaning: 200\.00 RON/);
    expect(p).toMatch(/Whitening: 900\.00 RON/);

    const ask = await h.say(t, sessionId, 'I would like to book a cleaning tomorrow at 10:00');
    const answer = await h.reply(t, ask);
    expect(answer).toMatch(new RegExp(`booked for Cleaning on ${tomorrow()} at 10:00`));
    // tokens streamed (coalesced), then the final message; tokens spell the answer
    const tokens = await h.tokens(t, ask);
    expect(tokens.length).toBeGreaterThan(0);
    expect(tokens.join('')).toBe(answer);
    // tool call + result events, in order, with the args encrypted
    const calls = h.watcher.ofType(
      'io.simptu.agent.tool_call',
      (e) => (e.data as { run_id: string }).run_id === ask,
    );
    expect(calls.map((e) => (e.data as { name: string }).name)).toEqual(['book_appointment']);
    expect(JSON.stringify(calls[0]!.data)).not.toContain('cleaning');

    const rows = await bookingsOf(t, customerId);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.status).toBe('booked');
    expect(formatZoned(rows[0]!.start, TZ).slice(0, 16)).toBe(`${tomorrow()}T10:00`);
    expect(rows[0]!.idempotency_key).toMatch(/^agent:/);
    await waitFor(
      'booking.created domain event',
      () => h.watcher.ofType('io.simptu.booking.created', (e) => e.tenant === t.name)[0],
    );

    const move = await h.say(t, sessionId, 'Please reschedule my appointment to tomorrow at 11:30');
    expect(await h.reply(t, move)).toMatch(/moved to .* at 11:30/);
    const moved = await bookingsOf(t, customerId);
    expect(moved).toHaveLength(1);
    expect(formatZoned(moved[0]!.start, TZ).slice(11, 16)).toBe('11:30');

    const cancel = await h.say(t, sessionId, 'Actually, cancel my appointment');
    expect(await h.reply(t, cancel)).toMatch(/is cancelled/);
    expect((await bookingsOf(t, customerId))[0]!.status).toBe('cancelled');
    await waitFor(
      'booking.cancelled domain event',
      () => h.watcher.ofType('io.simptu.booking.cancelled', (e) => e.tenant === t.name)[0],
    );

    const faq = await h.say(t, sessionId, 'Is there parking near you?');
    expect(await h.reply(t, faq)).toBe('Yes, free parking behind the clinic.');

    // The checkpoint lives in the tenant schema, encrypted: no plaintext of the conversation.
    const { rows: blobs } = await t.adminQuery<{ type: string; blob: Buffer }>(
      `SELECT type, blob FROM ${t.table('checkpoint_blobs')} WHERE thread_id = $1 AND blob IS NOT NULL`,
      [sessionId],
    );
    expect(blobs.length).toBeGreaterThan(0);
    for (const b of blobs) {
      expect(b.type).toMatch(/^enc1:/);
      expect(b.blob.toString('latin1')).not.toMatch(/parking|Cleaning|cancel/i);
    }
  }, 180_000);

  it('hands over to staff, stays quiet, and comes back when staff return it to the bot', async () => {
    const t = h.tenants[0]!;
    const { sessionId } = await h.newConversation(t);
    const ask = await h.say(t, sessionId, 'I want to talk to a human please');
    expect(await h.reply(t, ask)).toMatch(/member of staff to take over/);
    await waitFor(
      'handoff event',
      () =>
        h.watcher.ofType(
          'io.simptu.agent.handoff',
          (e) => (e.data as { session_id: string }).session_id === sessionId,
        )[0],
    );
    const { rows } = await t.adminQuery<{ state: string }>(
      `SELECT state FROM ${t.table('sessions')} WHERE id = $1`,
      [sessionId],
    );
    expect(rows[0]!.state).toBe('pending_human');

    const ignored = await h.say(t, sessionId, 'Hello? What are your prices?');
    await expect(h.reply(t, ignored, 4000)).rejects.toThrow(/timed out/);

    await t.run(async (ctx) => {
      await setSessionState(ctx, sessionId, 'human', { assignedTo: 'staff-1' });
      await setSessionState(ctx, sessionId, 'bot');
    });
    const back = await h.say(t, sessionId, 'What are your prices?');
    expect(await h.reply(t, back)).toMatch(/Cleaning/);
  }, 120_000);
});

describe('gym, Romanian', () => {
  it('lists classes, books, and cancels in Romanian', async () => {
    const t = h.tenants[1]!;
    const { sessionId, customerId } = await h.newConversation(t);
    const hi = await h.say(t, sessionId, 'Bună ziua');
    expect(await h.reply(t, hi)).toMatch(/Sunt asistentul Iron Gym/);
    const q = await h.say(t, sessionId, 'Ce clase aveți și cât costă?');
    expect(await h.reply(t, q)).toMatch(/Yoga: 50\.00 RON/);
    const book = await h.say(t, sessionId, 'Vreau să mă programez la yoga');
    expect(await h.reply(t, book)).toMatch(/Pentru ce zi și oră/);
    const when = await h.say(t, sessionId, 'mâine la ora 18');
    expect(await h.reply(t, when)).toMatch(
      new RegExp(`V-am programat pentru Yoga pe ${tomorrow()} la 18:00`),
    );
    expect(await bookingsOf(t, customerId)).toHaveLength(1);
    const cancel = await h.say(t, sessionId, 'Anulați programarea, vă rog');
    expect(await h.reply(t, cancel)).toMatch(/Am anulat programarea pentru Yoga/);
    expect((await bookingsOf(t, customerId))[0]!.status).toBe('cancelled');
  }, 120_000);
});

describe('hotel, English', () => {
  it('shows room availability and reserves a night', async () => {
    const t = h.tenants[2]!;
    const { sessionId, customerId } = await h.newConversation(t);
    const day = addDays(localDateOf(new Date(), TZ), 3);
    const avail = await h.say(t, sessionId, `Do you have a double room available on ${day}?`);
    expect(await h.reply(t, avail)).toMatch(new RegExp(`Free times for Double Room on ${day}: 00:00`));
    const book = await h.say(t, sessionId, `Please reserve a double room for ${day}`);
    expect(await h.reply(t, book)).toMatch(new RegExp(`booked for Double Room on ${day}`));
    expect(await bookingsOf(t, customerId)).toHaveLength(1);
  }, 120_000);
});
