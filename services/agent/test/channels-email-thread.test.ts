/**
 * The e-mail thread of a conversation (channels/thread.ts, `email_threads`) against real
 * Postgres: what a mail and a sent reply record, what a staff reply is threaded on, what is
 * never recorded (machine-written mail, our own mail), the chain's cap, and that the row is
 * encrypted and bound to its session. The staff relay's round trip through SMTP is in
 * channels-staff-relay.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCustomer, createSession, type DomainContext } from '@simptu/common';
import { parseEmail } from '../src/channels/email.ts';
import { loadEmailThread, recordInboundEmail, recordSentEmail, staffThread } from '../src/channels/thread.ts';
import { mime } from './channels-harness.ts';
import { createTestPlatform, provisionTenant, type TestPlatform, type TestTenant } from './support.ts';

const DESK = 'desk@thread.example';
let platform: TestPlatform;
let t: TestTenant;

beforeAll(async () => {
  platform = await createTestPlatform();
  t = await provisionTenant(platform, undefined, { integrations: { email: { ingestAddress: DESK } } });
}, 120_000);

afterAll(async () => {
  await t?.deprovision();
  await platform?.close();
}, 60_000);

const newSession = (ctx: DomainContext, email: string) =>
  createCustomer(ctx, { email }).then((c) => createSession(ctx, { customerId: c.id, channel: 'email' }));

describe('email_threads', () => {
  it('records every person’s mail and our replies; a staff reply answers the latest mail with the whole chain', async () => {
    await t.run(async (ctx) => {
      const s = await newSession(ctx, 'ana@example.com');
      const m1 = await parseEmail(
        mime(
          [
            'From: Ana <Ana@Example.com>',
            'Subject: Question',
            'Message-ID: <m1@mail.example>',
            'References: <m0@mail.example>',
          ],
          'hi',
        ),
      );
      expect(await recordInboundEmail(ctx.client, ctx.cipher, s.id, m1, DESK)).toEqual({
        subject: 'Question',
        address: 'ana@example.com',
        lastInbound: '<m1@mail.example>',
        references: ['<m0@mail.example>', '<m1@mail.example>'],
      });
      await recordSentEmail(ctx.client, ctx.cipher, s.id, '<r1@thread.example>', 'Re: Question');

      // never recorded: an auto-reply of the customer's, a mail from our own address
      const ooo = await parseEmail(
        mime(
          [
            'From: <ana@example.com>',
            'Subject: Automatic reply: Re: Question',
            'Message-ID: <ooo@mail.example>',
            'Auto-Submitted: auto-replied',
          ],
          'away',
        ),
      );
      expect(await recordInboundEmail(ctx.client, ctx.cipher, s.id, ooo, DESK)).toBeNull();
      const own = await parseEmail(
        mime([`From: <${DESK}>`, 'Subject: Re: Question', 'Message-ID: <own@thread.example>'], 'x'),
      );
      expect(await recordInboundEmail(ctx.client, ctx.cipher, s.id, own, DESK.toUpperCase())).toBeNull();

      // the next mail's client only kept In-Reply-To: the chain still has everything
      const m2 = await parseEmail(
        mime(
          [
            'From: <ana@example.com>',
            'Subject: RE: Re: Question',
            'Message-ID: <m2@mail.example>',
            'In-Reply-To: <r1@thread.example>',
          ],
          'and one more thing',
        ),
      );
      await recordInboundEmail(ctx.client, ctx.cipher, s.id, m2, DESK);
      const stored = await loadEmailThread(ctx.client, ctx.cipher, s.id);
      expect(stored).toEqual({
        subject: 'Question',
        address: 'ana@example.com',
        lastInbound: '<m2@mail.example>',
        references: ['<m0@mail.example>', '<m1@mail.example>', '<r1@thread.example>', '<m2@mail.example>'],
      });
      expect(staffThread(stored!, 'ignored')).toEqual({
        subject: 'Re: Question',
        inReplyTo: '<m2@mail.example>',
        references: ['<m0@mail.example>', '<m1@mail.example>', '<r1@thread.example>', '<m2@mail.example>'],
        staff: true,
      });
    });
  });

  it('long chains keep the first id and the latest ones', async () => {
    await t.run(async (ctx) => {
      const s = await newSession(ctx, 'long@example.com');
      for (let i = 0; i < 30; i++)
        await recordInboundEmail(
          ctx.client,
          ctx.cipher,
          s.id,
          await parseEmail(mime(['From: <long@example.com>', 'Subject: x', `Message-ID: <l${i}@x>`], 'x')),
          DESK,
        );
      const refs = (await loadEmailThread(ctx.client, ctx.cipher, s.id))!.references;
      expect(refs).toHaveLength(20);
      expect(refs[0]).toBe('<l0@x>');
      expect(refs.slice(1)).toEqual(Array.from({ length: 19 }, (_, i) => `<l${i + 11}@x>`));
    });
  });

  it('is encrypted at rest and bound to its session', async () => {
    const [a, b] = await t.run(async (ctx) => {
      const s1 = await newSession(ctx, 'secret1@example.com');
      const s2 = await newSession(ctx, 'secret2@example.com');
      for (const [s, from] of [
        [s1, 'secret1@example.com'],
        [s2, 'secret2@example.com'],
      ] as const)
        await recordInboundEmail(
          ctx.client,
          ctx.cipher,
          s.id,
          await parseEmail(mime([`From: <${from}>`, 'Subject: Private', `Message-ID: <${s.id}@x>`], 'x')),
          DESK,
        );
      return [s1.id, s2.id];
    });
    const { rows } = await t.adminQuery<{ thread: Buffer }>(
      `SELECT thread FROM ${t.table('email_threads')} WHERE session_id = $1`,
      [a],
    );
    expect(rows[0]!.thread.toString('latin1')).not.toContain('secret1');
    expect(rows[0]!.thread.toString('latin1')).not.toContain('Private');
    // a's thread copied onto b's row does not decrypt as b's
    await t.adminQuery(
      `UPDATE ${t.table('email_threads')} SET thread = (SELECT thread FROM ${t.table('email_threads')} WHERE session_id = $1) WHERE session_id = $2`,
      [a, b],
    );
    await expect(t.run((ctx) => loadEmailThread(ctx.client, ctx.cipher, b))).rejects.toThrow();
  });
});
