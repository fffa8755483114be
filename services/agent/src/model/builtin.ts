/**
 * The `builtin` provider: a deterministic, offline, SCRIPTED chat model — not an LLM. It
 * implements LangChain's `BaseChatModel` (bindTools, `_generate`, token streaming through
 * `_streamResponseChunks`, tool calls as `tool_call_chunks`), so it drives the real graph and
 * the real tools exactly like a hosted model would, for development and tests:
 *
 *  - a human turn: keyword intents + slot extraction (intents.ts, English and Romanian) →
 *    one real tool call (or a question for a missing slot, remembered in the AI message's
 *    `additional_kwargs.builtin.pending` so the next turn can fill it);
 *  - after tool results: the answer is phrased from the results with fixed templates.
 *
 * Tool call ids are derived from the conversation (not random), so a retried run asks for
 * exactly the same calls — and the tools' idempotency keys match.
 */
import { createHash } from 'node:crypto';
import {
  BaseChatModel,
  type BaseChatModelCallOptions,
  type BindToolsInput,
} from '@langchain/core/language_models/chat_models';
import type { CallbackManagerForLLMRun } from '@langchain/core/callbacks/manager';
import { AIMessage, AIMessageChunk, type BaseMessage, type ToolCall } from '@langchain/core/messages';
import { ChatGenerationChunk, type ChatResult } from '@langchain/core/outputs';
import type { Runnable } from '@langchain/core/runnables';
import type { BaseLanguageModelInput } from '@langchain/core/language_models/base';
import { detectLanguage, fold, understand, type Intent, type Lang, type Utterance } from './intents.ts';

export interface BuiltinCallOptions extends BaseChatModelCallOptions {
  tools?: BindToolsInput[];
}

interface Pending {
  intent: Intent;
  service?: string;
  date?: string;
  time?: string;
}

interface Reply {
  content: string;
  toolCalls: ToolCall[];
  pending?: Pending;
}

function textOf(m: BaseMessage): string {
  return typeof m.content === 'string'
    ? m.content
    : m.content.map((c) => ('text' in c && typeof c.text === 'string' ? c.text : '')).join('');
}

function toolNameOf(t: BindToolsInput): string | undefined {
  const o = t as { name?: unknown; function?: { name?: unknown } };
  if (typeof o.name === 'string') return o.name;
  if (typeof o.function?.name === 'string') return o.function.name;
  return undefined;
}

const T = {
  greet: {
    en: (biz: string) =>
      `Hello! I'm the assistant of ${biz}. I can tell you about prices, find a free time, book, move or cancel a booking, or put you through to the staff. How can I help?`,
    ro: (biz: string) =>
      `Bună ziua! Sunt asistentul ${biz}. Vă pot spune prețurile, găsi o oră liberă, face, muta sau anula o programare, sau vă pot pune în legătură cu personalul. Cu ce vă pot ajuta?`,
  },
  thanks: { en: "You're welcome! Anything else?", ro: 'Cu plăcere! Vă mai pot ajuta cu ceva?' },
  askDate: {
    en: 'For which day? (e.g. tomorrow, Friday or 2026-03-10)',
    ro: 'Pentru ce zi? (de exemplu mâine, vineri sau 2026-03-10)',
  },
  askTime: { en: 'At what time? (e.g. 10:00)', ro: 'La ce oră? (de exemplu 10:00)' },
  askDateTime: {
    en: 'For which day and time? (e.g. tomorrow at 10:00)',
    ro: 'Pentru ce zi și oră? (de exemplu mâine la 10:00)',
  },
  cannot: {
    en: "Sorry, I can't do that here. Would you like me to put you through to a member of staff?",
    ro: 'Îmi pare rău, nu pot face asta aici. Doriți să vă pun în legătură cu cineva din personal?',
  },
} as const;

/** `YYYY-MM-DD` of "Today is …" in the system prompt (the graph writes it from the tenant's zone). */
function todayFrom(messages: BaseMessage[]): string {
  for (const m of messages) {
    if (m.getType() !== 'system') continue;
    const d = /Today is (\d{4}-\d{2}-\d{2})/.exec(textOf(m));
    if (d) return d[1]!;
  }
  return new Date().toISOString().slice(0, 10);
}

function bizFrom(messages: BaseMessage[]): string {
  for (const m of messages) {
    if (m.getType() !== 'system') continue;
    const d = /assistant of "([^"]+)"/.exec(textOf(m));
    if (d) return d[1]!;
  }
  return 'us';
}

function callId(seed: string, name: string, args: unknown): string {
  return `call_${createHash('sha256')
    .update(`${seed}\n${name}\n${JSON.stringify(args)}`)
    .digest('hex')
    .slice(0, 24)}`;
}

const PHONE_RE = /(\+|00)\d[\d\s.-]{6,16}\d/;

export class BuiltinChatModel extends BaseChatModel<BuiltinCallOptions> {
  static override lc_name(): string {
    return 'SimptuBuiltinChatModel';
  }

  override _llmType(): string {
    return 'simptu-builtin';
  }

  override bindTools(
    tools: BindToolsInput[],
    kwargs?: Partial<BuiltinCallOptions>,
  ): Runnable<BaseLanguageModelInput, AIMessageChunk, BuiltinCallOptions> {
    return this.withConfig({ tools, ...kwargs } as Partial<BuiltinCallOptions>) as unknown as Runnable<
      BaseLanguageModelInput,
      AIMessageChunk,
      BuiltinCallOptions
    >;
  }

  /** The whole scripted decision, pure: messages + bound tool names → reply. */
  respond(messages: BaseMessage[], toolNames: readonly string[]): Reply {
    const last = messages[messages.length - 1];
    if (!last) return { content: '', toolCalls: [] };
    const lastHuman = [...messages].reverse().find((m) => m.getType() === 'human');
    const lang: Lang = lastHuman ? detectLanguage(textOf(lastHuman)) : 'en';
    if (last.getType() === 'tool') return { content: phraseResults(messages, lang), toolCalls: [] };
    return this.#plan(messages, toolNames, lang);
  }

  #plan(messages: BaseMessage[], toolNames: readonly string[], lang: Lang): Reply {
    const human = messages[messages.length - 1]!;
    const text = textOf(human);
    const today = todayFrom(messages);
    const u: Utterance = understand(text, today);
    const seed = `${messages.length}\n${text}`;
    const has = (prefixes: string[]) =>
      toolNames.find((n) => prefixes.some((p) => n === p || n.startsWith(p)));

    // A slot question from the previous AI turn: this message may just be the answer.
    const prevAi = [...messages.slice(0, -1)].reverse().find((m) => m.getType() === 'ai');
    const pending = (prevAi?.additional_kwargs as { builtin?: { pending?: Pending } } | undefined)?.builtin
      ?.pending;
    let intent = u.intent;
    let service = text;
    let date = u.date;
    let time = u.time;
    if (pending && (intent === 'faq' || intent === pending.intent || intent === 'availability')) {
      intent = pending.intent;
      service = `${pending.service ?? ''} ${text}`.trim();
      date = u.date ?? pending.date;
      time = u.time ?? pending.time;
    }

    const calls: ToolCall[] = [];
    const call = (name: string, args: Record<string, unknown>) =>
      calls.push({ name, args, id: callId(seed, name, args), type: 'tool_call' });

    // A phone number while identification is pending: identify, then carry on.
    const phone = PHONE_RE.exec(text)?.[0];
    if (phone && has(['identify_customer']) && (pending || intent === 'faq')) {
      call('identify_customer', { phone: phone.replace(/[\s.-]/g, '') });
      if (!pending) return { content: '', toolCalls: calls };
    }

    switch (intent) {
      case 'greet':
        return { content: T.greet[lang](bizFrom(messages)), toolCalls: [] };
      case 'thanks':
        return { content: T.thanks[lang], toolCalls: [] };
      case 'human': {
        const n = has(['handoff_to_staff']);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        call(n, { reason: 'customer asked for a human' });
        break;
      }
      case 'prices': {
        const n = has(['list_treatments', 'list_classes', 'list_room_types']);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        call(n, {});
        break;
      }
      case 'availability': {
        const n = has(['check_availability', 'class_schedule', 'room_availability']);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        if (!date) return { content: T.askDate[lang], toolCalls: [], pending: { intent, service } };
        call(n, { service, date });
        break;
      }
      case 'book': {
        const n = has(['book_appointment', 'book_class', 'reserve_room']);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        const hotel = n === 'reserve_room';
        if (!date && (hotel || !time))
          return {
            content: hotel ? T.askDate[lang] : T.askDateTime[lang],
            toolCalls: [],
            pending: { intent, service, ...(time ? { time } : {}) },
          };
        if (!hotel && !time)
          return {
            content: T.askTime[lang],
            toolCalls: [],
            pending: { intent, service, ...(date ? { date } : {}) },
          };
        call(n, hotel ? { service, date } : { service, date, time });
        break;
      }
      case 'reschedule': {
        const n = has(['reschedule_appointment', 'reschedule_class_booking', 'change_reservation']);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        const hotel = n === 'change_reservation';
        if (!date || (!hotel && !time))
          return {
            content: T.askDateTime[lang],
            toolCalls: [],
            pending: { intent, ...(date ? { date } : {}), ...(time ? { time } : {}) },
          };
        call(n, hotel ? { date } : { date, time });
        break;
      }
      case 'cancel': {
        const n = has(['cancel_appointment', 'cancel_class_booking', 'cancel_reservation']);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        call(n, {});
        break;
      }
      case 'access_code': {
        const n = has(['issue_access_code']);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        call(n, {});
        break;
      }
      case 'my_bookings': {
        const n = has(['list_my_bookings']);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        call(n, {});
        break;
      }
      case 'rating': {
        const n = has(['ask_for_rating']);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        call(n, {});
        break;
      }
      case 'faq': {
        const n = has(['search_faq']);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        call(n, { query: text });
        break;
      }
    }
    return { content: '', toolCalls: calls };
  }

  #toolNames(options: this['ParsedCallOptions']): string[] {
    return (options.tools ?? []).map(toolNameOf).filter((n): n is string => n !== undefined);
  }

  #message(reply: Reply): AIMessage {
    return new AIMessage({
      content: reply.content,
      tool_calls: reply.toolCalls,
      additional_kwargs: reply.pending ? { builtin: { pending: reply.pending } } : {},
    });
  }

  async _generate(messages: BaseMessage[], options: this['ParsedCallOptions']): Promise<ChatResult> {
    const reply = this.respond(messages, this.#toolNames(options));
    const message = this.#message(reply);
    return { generations: [{ text: reply.content, message }] };
  }

  override async *_streamResponseChunks(
    messages: BaseMessage[],
    options: this['ParsedCallOptions'],
    runManager?: CallbackManagerForLLMRun,
  ): AsyncGenerator<ChatGenerationChunk> {
    const reply = this.respond(messages, this.#toolNames(options));
    // Word-sized token deltas, as a hosted model streams them.
    for (const piece of reply.content.match(/\S+\s*/g) ?? []) {
      if (options.signal?.aborted) return;
      const chunk = new ChatGenerationChunk({ message: new AIMessageChunk({ content: piece }), text: piece });
      yield chunk;
      await runManager?.handleLLMNewToken(piece, undefined, undefined, undefined, undefined, { chunk });
    }
    if (reply.toolCalls.length > 0 || reply.pending) {
      yield new ChatGenerationChunk({
        text: '',
        message: new AIMessageChunk({
          content: '',
          tool_call_chunks: reply.toolCalls.map((c, index) => ({
            type: 'tool_call_chunk' as const,
            name: c.name,
            args: JSON.stringify(c.args),
            id: c.id!,
            index,
          })),
          additional_kwargs: reply.pending ? { builtin: { pending: reply.pending } } : {},
        }),
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Phrasing tool results

type R = Record<string, unknown>;

function parse(content: string): R {
  try {
    const v: unknown = JSON.parse(content);
    return v && typeof v === 'object' ? (v as R) : { value: v };
  } catch {
    return { value: content };
  }
}

function list(items: unknown[]): string {
  return items.map(String).join(', ');
}

function phraseOne(name: string, r: R, lang: Lang): string {
  const ro = lang === 'ro';
  if (typeof r.error === 'string') return phraseError(r, lang);
  if (name.startsWith('list_') && name !== 'list_my_bookings') {
    const items = (Object.values(r)[0] as Array<R>) ?? [];
    if (items.length === 0)
      return ro ? 'Momentan nu avem nimic disponibil în ofertă.' : 'There is nothing on offer at the moment.';
    const lines = items.map(
      (s) => `- ${String(s.name)}: ${String(s.price)} (${String(s.duration_minutes)} min)`,
    );
    return (ro ? 'Iată ce oferim:\n' : 'Here is what we offer:\n') + lines.join('\n');
  }
  if (name === 'list_my_bookings') {
    const b = (r.bookings as R[]) ?? [];
    if (b.length === 0) return ro ? 'Nu aveți nicio programare viitoare.' : 'You have no upcoming bookings.';
    return (
      (ro ? 'Programările dumneavoastră: ' : 'Your bookings: ') +
      b.map((x) => `${String(x.service)} ${String(x.date)} ${String(x.time)}`).join('; ')
    );
  }
  if ('slots' in r) {
    const slots = r.slots as string[];
    if (slots.length === 0)
      return ro
        ? `Nu mai sunt ore libere pentru ${String(r.service)} pe ${String(r.date)}.`
        : `There are no free times for ${String(r.service)} on ${String(r.date)}.`;
    return ro
      ? `Ore libere pentru ${String(r.service)} pe ${String(r.date)}: ${list(slots)}. Ce oră preferați?`
      : `Free times for ${String(r.service)} on ${String(r.date)}: ${list(slots)}. Which time suits you?`;
  }
  if (r.booked) {
    const b = r.booked as R;
    return ro
      ? `Gata! V-am programat pentru ${String(b.service)} pe ${String(b.date)} la ${String(b.time)}. Referință: ${String(b.reference)}.`
      : `Done! You're booked for ${String(b.service)} on ${String(b.date)} at ${String(b.time)}. Reference: ${String(b.reference)}.`;
  }
  if (r.rescheduled) {
    const b = r.rescheduled as R;
    return ro
      ? `Am mutat programarea pentru ${String(b.service)} pe ${String(b.date)} la ${String(b.time)}.`
      : `Your ${String(b.service)} booking is moved to ${String(b.date)} at ${String(b.time)}.`;
  }
  if (r.cancelled) {
    const b = r.cancelled as R;
    return ro
      ? `Am anulat programarea pentru ${String(b.service)} din ${String(b.date)} de la ${String(b.time)}.`
      : `Your ${String(b.service)} booking on ${String(b.date)} at ${String(b.time)} is cancelled.`;
  }
  if (r.handoff)
    return ro
      ? 'V-am pus în legătură cu un coleg din personal; vă va răspunde aici în curând.'
      : "I've asked a member of staff to take over; they'll reply here shortly.";
  if ('answer' in r)
    return r.answer
      ? String(r.answer)
      : ro
        ? 'Nu știu răspunsul la asta. Doriți să vă pun în legătură cu cineva din personal?'
        : "I don't know the answer to that. Would you like me to put you through to a member of staff?";
  if (r.code)
    return ro
      ? `Codul dumneavoastră de acces este ${String(r.code)} (valabil 24 de ore).`
      : `Your access code is ${String(r.code)} (valid for 24 hours).`;
  if (r.asked)
    return ro
      ? 'Cum ați nota conversația noastră, de la 1 la 5?'
      : 'How would you rate our conversation, from 1 to 5?';
  if (r.identified) return '';
  if (r.queued) return ro ? 'Mesajul a fost trimis.' : 'The message is on its way.';
  return ro ? 'Gata.' : 'Done.';
}

function phraseError(r: R, lang: Lang): string {
  const ro = lang === 'ro';
  const code = String(r.error);
  const alts = Array.isArray(r.alternatives) && r.alternatives.length > 0 ? list(r.alternatives) : undefined;
  if (code === 'SIMPTU_ERR_BOOKING_CONFLICT')
    return ro
      ? `Ora aceea nu mai este liberă.${alts ? ` Ore libere în aceeași zi: ${alts}.` : ''}`
      : `That time is no longer available.${alts ? ` Free times that day: ${alts}.` : ''}`;
  if (code === 'SIMPTU_ERR_VALIDATION')
    return ro
      ? `Nu pot programa la ora aceea (în trecut sau în afara programului).${alts ? ` Ore libere: ${alts}.` : ''}`
      : `I can't book that time (it is in the past or outside opening hours).${alts ? ` Free times: ${alts}.` : ''}`;
  if (code === 'SERVICE_UNCLEAR')
    return ro
      ? `Pentru care serviciu? ${list((r.options as unknown[]) ?? [])}`
      : `Which one would you like? ${list((r.options as unknown[]) ?? [])}`;
  if (code === 'NO_BOOKING')
    return ro
      ? 'Nu găsesc nicio programare viitoare pe numele dumneavoastră.'
      : "I can't find an upcoming booking for you.";
  if (code === 'CUSTOMER_UNKNOWN')
    return ro
      ? 'Vă rog să-mi spuneți numărul de telefon (de ex. +40712345678).'
      : 'Please tell me your phone number (e.g. +40712345678).';
  if (code === 'NOT_ALLOWED')
    return ro
      ? 'Nu pot face această modificare pe acest canal. Un coleg din personal vă va contacta.'
      : "I can't make that change over this channel. A member of staff will follow up with you.";
  return ro
    ? 'Îmi pare rău, nu am reușit. Încercați din nou sau cereți să vorbiți cu personalul.'
    : "Sorry, that didn't work. Please try again or ask for a member of staff.";
}

/** Phrases the tool results of the latest AI turn. */
export function phraseResults(messages: BaseMessage[], lang: Lang): string {
  const out: string[] = [];
  let i = messages.length - 1;
  const results: BaseMessage[] = [];
  while (i >= 0 && messages[i]!.getType() === 'tool') results.unshift(messages[i--]!);
  const ai = messages[i] as AIMessage | undefined;
  const names = new Map((ai?.tool_calls ?? []).map((c) => [c.id, c.name]));
  for (const m of results) {
    const id = (m as unknown as { tool_call_id: string }).tool_call_id;
    const s = phraseOne(names.get(id) ?? '', parse(textOf(m)), lang);
    if (s) out.push(s);
  }
  return out.join('\n') || (lang === 'ro' ? 'Gata.' : 'Done.');
}

export { fold };
