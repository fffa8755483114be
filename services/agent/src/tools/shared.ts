/**
 * Tools every business type has: FAQ from the tenant's knowledge base, hand over to staff, ask
 * for a rating, identify the customer by phone, send an SMS/WhatsApp/Messenger message to the
 * conversation's OWN customer, and (dental) issue a patient access code.
 */
import {
  createCustomer,
  findCustomerByPhone,
  getCustomer,
  issueAccessCode,
  markSessionChanged,
  newId,
  SimptuError,
} from '@simptu/common';
import { queueOutbound } from '../channels/outbound.ts';
import { fold } from '../model/intents.ts';
import { str, toolError, type AgentTool } from './types.ts';

interface FaqRow {
  id: string;
  question: string;
  answer: string;
  keywords: string[];
}

const STOP = new Set(
  'the a an is are do does you your we our what when where how can i to of for in on at and or it this that ce cum cand unde este sunt aveti va la de si sau in pe cu un o'.split(
    ' ',
  ),
);

function words(text: string): string[] {
  return fold(text)
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length >= 3 && !STOP.has(w));
}

/** Best knowledge-base entry by word overlap (question words + keywords); stems by prefix. */
export function rankFaq(rows: readonly FaqRow[], query: string): FaqRow | undefined {
  const q = words(query);
  let best: { r: FaqRow; score: number } | undefined;
  for (const r of rows) {
    const vocab = [...words(r.question), ...r.keywords.map((k) => fold(k))];
    const score = q.filter((w) =>
      vocab.some((v) => v.startsWith(w.slice(0, 5)) || w.startsWith(v.slice(0, 5))),
    ).length;
    if (score > 0 && (!best || score > best.score)) best = { r, score };
  }
  return best?.r;
}

export const searchFaq: AgentTool = {
  name: 'search_faq',
  description:
    "Look up the business's own answer to a question (opening hours, parking, policies…) in its knowledge base.",
  schema: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
  sideEffect: false,
  run: (args, t) =>
    t.db(async (ctx) => {
      const { rows } = await ctx.client.query<FaqRow>(
        'SELECT id, question, answer, keywords FROM knowledge_base WHERE active ORDER BY created_at, id',
      );
      const hit = rankFaq(rows, str(args.query) ?? '');
      return hit ? { question: hit.question, answer: hit.answer } : { answer: null };
    }),
};

export const handoffToStaff: AgentTool = {
  name: 'handoff_to_staff',
  description: 'Hand the conversation over to a human member of staff (the assistant then stays quiet).',
  schema: { type: 'object', properties: { reason: { type: 'string' } } },
  // Always allowed, even for untrusted channels: it only asks a human to look.
  sideEffect: false,
  run: async (args, t) => {
    t.requestHandoff(str(args.reason) ?? 'customer asked for a human');
    return { handoff: true };
  },
};

export const askForRating: AgentTool = {
  name: 'ask_for_rating',
  description: 'Ask the customer to rate this conversation from 1 to 5.',
  schema: { type: 'object', properties: {} },
  sideEffect: false,
  run: async (_args, t) => ({ asked: true, subject: { type: 'session', id: t.session.id } }),
};

export const identifyCustomer: AgentTool = {
  name: 'identify_customer',
  description:
    'Identify the customer by phone number (creates the customer if new) and attach them to this conversation.',
  schema: {
    type: 'object',
    properties: { phone: { type: 'string' }, name: { type: 'string' } },
    required: ['phone'],
  },
  sideEffect: true,
  run: (args, t) =>
    t.db(async (ctx) => {
      if (t.session.customerId) return { customer: 'already identified' };
      try {
        const phone = str(args.phone) ?? '';
        const existing = await findCustomerByPhone(ctx, phone);
        const c = existing ?? (await createCustomer(ctx, { phone, displayName: str(args.name) ?? null }));
        await ctx.client.query(
          'UPDATE sessions SET customer_id = $2, updated_at = now() WHERE id = $1 AND customer_id IS NULL',
          [t.session.id, c.id],
        );
        markSessionChanged(ctx, t.session.id); // the owner changed: the API's history cache
        t.session.customerId = c.id;
        return { identified: true };
      } catch (err) {
        if (err instanceof SimptuError && err.statusCode < 500) return toolError(err.code, err.message);
        throw err;
      }
    }),
};

export const issuePatientAccessCode: AgentTool = {
  name: 'issue_access_code',
  description: 'Issue the patient a one-time access code for the patient app (valid 24 hours).',
  schema: { type: 'object', properties: {} },
  sideEffect: true,
  run: (_args, t) =>
    t.db(async (ctx) => {
      if (!t.session.customerId) return toolError('CUSTOMER_UNKNOWN', 'the patient must identify first');
      const r = await issueAccessCode(ctx, { customerId: t.session.customerId }, { sub: 'agent' });
      return { code: r.code, expires_at: r.accessCode.expiresAt.toISOString() };
    }),
};

export const sendChannelMessage: AgentTool = {
  name: 'send_message',
  description:
    "Send a text to THIS conversation's customer over SMS, WhatsApp or Messenger (e.g. a confirmation). Never to anyone else.",
  schema: {
    type: 'object',
    properties: {
      channel: { type: 'string', enum: ['sms', 'whatsapp', 'messenger'] },
      text: { type: 'string' },
    },
    required: ['channel', 'text'],
  },
  sideEffect: true,
  run: (args, t) =>
    t.db(async (ctx) => {
      const channel = str(args.channel);
      const text = str(args.text);
      if (channel !== 'sms' && channel !== 'whatsapp' && channel !== 'messenger')
        return toolError('BAD_CHANNEL', 'channel must be sms, whatsapp or messenger');
      if (!text || text.length > 1600) return toolError('BAD_TEXT', 'text must be 1..1600 characters');
      if (!t.session.customerId) return toolError('CUSTOMER_UNKNOWN', 'the customer must identify first');
      let recipient: string | null = null;
      if (channel === 'messenger') {
        const { rows } = await ctx.client.query<{ id: string; address: Buffer }>(
          `SELECT id, address FROM channel_contacts WHERE customer_id = $1 AND channel = 'messenger' ORDER BY created_at DESC LIMIT 1`,
          [t.session.customerId],
        );
        if (rows[0])
          recipient = ctx.cipher.decryptString(rows[0].address, {
            table: 'channel_contacts',
            column: 'address',
            rowId: rows[0].id,
          });
      } else recipient = (await getCustomer(ctx, t.session.customerId)).phone;
      if (!recipient) return toolError('NO_ADDRESS', `the customer has no ${channel} address`);
      // Idempotent: the outbound row id derives from the call's idempotency key.
      const id = await queueOutbound(ctx, {
        key: t.idempotencyKey,
        sessionId: t.session.id,
        channel,
        recipient,
        body: text,
      });
      return { queued: true, outbound_id: id ?? newId() };
    }),
};
