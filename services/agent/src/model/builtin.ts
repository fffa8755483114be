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
import { conversationLanguage, fold, understand, type Intent, type Lang, type Utterance } from './intents.ts';

export interface BuiltinCallOptions extends BaseChatModelCallOptions {
  tools?: BindToolsInput[];
}

interface Pending {
  intent: Intent | GymIntent;
  service?: string;
  date?: string;
  time?: string;
  trainer?: string;
  /** the question asked was "which trainer?": the next message is the name */
  askTrainer?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Gym intents (memberships, trainer sessions): recognised only when the gym's tools are bound,
// so a dental or hotel conversation is never read this way.

export type GymIntent =
  | 'plans'
  | 'my_membership'
  | 'join'
  | 'membership_desk'
  | 'trainer_book'
  | 'trainer_cancel'
  | 'trainer_reschedule'
  | 'trainer_prices'
  | 'trainer_availability';

const MEMBERSHIP_RE = /\b(memberships?|subscriptions?|abonament\w*|abonez|abona\w*)\b/;
const MY_MEMBERSHIP_RE =
  /\b(my (membership|subscription|pass)|do i have (a|an|any)( active)? (membership|subscription)|abonamentul meu|abonamentului meu|am (un )?abonament|abonament(ul)? am|abonamentul (mi|imi) expira)\b/;
/** a verb of getting right before the membership word ("I want the monthly membership") */
const JOIN_RE =
  /\b(sign (me )?up|join|buy|get|start|purchase|take|want|would like|i'?d like|vreau|as vrea|doresc|cumpar|iau|fac|sa ma abonez|ma abonez)\b(\s+[\w'-]+){0,3}?\s+(memberships?|subscriptions?|abonament\w*)\b|\b(sa ma abonez|ma abonez)\b/;
const PRICE_RE = /\b(how much|cost\w*|prices?|pricing|what|which|cat costa|costa|pret\w*|tarif\w*|ce|care)\b/;
const TRAINER_RE =
  /\b(personal train\w*|trainers?|coach(es)?|pt session|training session|session with|antrenor\w*|antrenoare\w*|sesiune\w*|antrenament(ul)? personal)\b/;

/** Which gym intent the text is, given the generic intent and the bound tools; undefined: none. */
export function gymIntent(text: string, base: Intent, toolNames: readonly string[]): GymIntent | undefined {
  const f = fold(text);
  const bound = (n: string) => toolNames.includes(n);
  if (TRAINER_RE.test(f) && bound('book_trainer_session')) {
    if (base === 'cancel') return 'trainer_cancel';
    if (base === 'reschedule') return 'trainer_reschedule';
    if (base === 'prices') return 'trainer_prices';
    if (base === 'availability') return 'trainer_availability';
    if (base === 'faq' || base === 'book' || base === 'greet') return 'trainer_book';
    return undefined;
  }
  if (MEMBERSHIP_RE.test(f) && bound('list_membership_plans')) {
    if (base === 'cancel' || base === 'reschedule') return 'membership_desk';
    if (MY_MEMBERSHIP_RE.test(f)) return 'my_membership';
    if (JOIN_RE.test(f) && !PRICE_RE.test(f)) return 'join';
    if (base === 'book') return undefined; // "book yoga with my membership" is a class
    if (base === 'human' || base === 'my_bookings' || base === 'rating' || base === 'access_code')
      return undefined;
    return 'plans';
  }
  return undefined;
}

const NOT_A_NAME = new Set(
  'the a an my your our trainer coach personal training session antrenorul antrenoarea antrenor antrenoare domnul doamna un o pe meu mea tomorrow today tonight maine azi astazi poimaine diseara at la ora on in pe next urmatoarea urmatorul monday tuesday wednesday thursday friday saturday sunday luni marti miercuri joi vineri sambata duminica me mine noi us someone cineva'.split(
    ' ',
  ),
);

/** The trainer named after "with" / "cu" ("with Andrei", "cu antrenorul Andrei"), if any. */
export function trainerNameIn(text: string): string | undefined {
  const words = text.split(/[^\p{L}'-]+/u).filter(Boolean);
  for (let i = 0; i < words.length; i++) {
    const w = fold(words[i]!);
    if (w !== 'with' && w !== 'cu') continue;
    for (let j = i + 1; j < words.length && j <= i + 3; j++) {
      const cand = words[j]!;
      if (NOT_A_NAME.has(fold(cand))) continue;
      if (cand.length >= 2 && !/\d/.test(cand)) return cand;
      break;
    }
  }
  return undefined;
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
  membershipDesk: {
    en: 'Memberships are changed, frozen or cancelled by our staff at the front desk. Would you like me to put you through to a member of staff?',
    ro: 'Abonamentele se modifică, se suspendă sau se anulează de personal, la recepție. Doriți să vă pun în legătură cu cineva din personal?',
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

/** The business's default language, from "default locale is ro-RO" in the system prompt. */
function localeFrom(messages: BaseMessage[]): Lang {
  for (const m of messages) {
    if (m.getType() !== 'system') continue;
    const d = /default locale is ([A-Za-z]{2})\b/.exec(textOf(m));
    if (d) return d[1]!.toLowerCase() === 'ro' ? 'ro' : 'en';
  }
  return 'en';
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
    // The conversation's language, not the last message's: "10:00" or "Andrei" after Romanian
    // messages is answered in Romanian, until the customer clearly writes in English.
    const lang: Lang = conversationLanguage(
      messages.filter((m) => m.getType() === 'human').map(textOf),
      localeFrom(messages),
    );
    if (last.getType() === 'tool') {
      const pending = pendingAfterResults(messages);
      return { content: phraseResults(messages, lang), toolCalls: [], ...(pending ? { pending } : {}) };
    }
    return this.#plan(messages, toolNames, lang);
  }

  #plan(messages: BaseMessage[], toolNames: readonly string[], lang: Lang): Reply {
    const human = messages[messages.length - 1]!;
    const text = textOf(human);
    const today = todayFrom(messages);
    const u: Utterance = understand(text, today);
    // Tool call ids: the same for the same message (a redelivered message after a crash gets
    // the same idempotency keys), different for each message (its id: the inbound message id).
    const seed = `${human.id ?? messages.length}\n${text}`;
    const has = (prefixes: string[]) =>
      toolNames.find((n) => prefixes.some((p) => n === p || n.startsWith(p)));

    // A slot question from the previous AI turn: this message may just be the answer.
    const prevAi = [...messages.slice(0, -1)].reverse().find((m) => m.getType() === 'ai');
    const pending = (prevAi?.additional_kwargs as { builtin?: { pending?: Pending } } | undefined)?.builtin
      ?.pending;
    let intent: Intent | GymIntent = gymIntent(text, u.intent, toolNames) ?? u.intent;
    let service = text;
    let date = u.date;
    let time = u.time;
    let trainer = trainerNameIn(text);
    if (pending && (intent === 'faq' || intent === pending.intent || intent === 'availability')) {
      intent = pending.intent;
      service = `${pending.service ?? ''} ${text}`.trim();
      date = u.date ?? pending.date;
      time = u.time ?? pending.time;
      trainer = trainer ?? (pending.askTrainer ? text.trim() : pending.trainer);
    }
    const withTrainer = trainer ? { trainer } : {};

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
      case 'plans':
      case 'my_membership':
      case 'trainer_prices':
      case 'trainer_cancel': {
        const name = {
          plans: 'list_membership_plans',
          my_membership: 'my_membership',
          trainer_prices: 'list_trainers',
          trainer_cancel: 'cancel_trainer_session',
        }[intent];
        const n = has([name]);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        call(n, {});
        break;
      }
      case 'join': {
        const n = has(['request_membership']);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        call(n, { plan: service, ...(date ? { start_date: date } : {}) });
        break;
      }
      case 'membership_desk':
        return { content: T.membershipDesk[lang], toolCalls: [] };
      case 'trainer_availability': {
        const n = has(['trainer_availability']);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        if (!date)
          return { content: T.askDate[lang], toolCalls: [], pending: { intent, service, ...withTrainer } };
        call(n, { service, date, ...withTrainer });
        break;
      }
      case 'trainer_book': {
        const n = has(['book_trainer_session']);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        if (!date || !time)
          return {
            content: !date && !time ? T.askDateTime[lang] : !date ? T.askDate[lang] : T.askTime[lang],
            toolCalls: [],
            pending: {
              intent,
              service,
              ...withTrainer,
              ...(date ? { date } : {}),
              ...(time ? { time } : {}),
            },
          };
        call(n, { service, date, time, ...withTrainer });
        break;
      }
      case 'trainer_reschedule': {
        const n = has(['reschedule_trainer_session']);
        if (!n) return { content: T.cannot[lang], toolCalls: [] };
        if (!date || !time)
          return {
            content: T.askDateTime[lang],
            toolCalls: [],
            pending: { intent, ...(date ? { date } : {}), ...(time ? { time } : {}) },
          };
        call(n, { date, time });
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

const STATUS_RO: Record<string, string> = {
  pending: 'în așteptare',
  active: 'activ',
  frozen: 'suspendat',
  cancelled: 'anulat',
};

function periodPhrase(period: string, lang: Lang): string {
  const ro = lang === 'ro';
  if (period === 'month') return ro ? 'lună' : 'month';
  if (period === 'year') return ro ? 'an' : 'year';
  return ro ? period.replace('days', 'zile') : period;
}

function classesPhrase(classes: unknown, period: string, lang: Lang): string {
  const ro = lang === 'ro';
  if (classes === 'unlimited' || classes == null) return ro ? 'clase nelimitate' : 'unlimited classes';
  const per =
    period === 'month'
      ? ro
        ? ' pe lună'
        : ' a month'
      : period === 'year'
        ? ro
          ? ' pe an'
          : ' a year'
        : '';
  return ro ? `${String(classes)} clase${per}` : `${String(classes)} classes${per}`;
}

function phraseMembership(m: R, lang: Lang): string {
  const ro = lang === 'ro';
  const status = String(m.status);
  const until = m.ends
    ? ro
      ? `până la ${String(m.ends)}`
      : `until ${String(m.ends)}`
    : ro
      ? 'se reînnoiește până la anulare'
      : 'renews until cancelled';
  let s = ro
    ? `Abonament ${String(m.plan)}: ${STATUS_RO[status] ?? status}, din ${String(m.starts)}, ${until}.`
    : `${String(m.plan)} membership: ${status}, from ${String(m.starts)}, ${until}.`;
  if (status === 'pending')
    s += ro
      ? ' Personalul îl activează după plata la recepție.'
      : ' Staff activate it once it is paid at the front desk.';
  if (status === 'active' && 'classes_used' in m) {
    if (m.classes_allowance === 'unlimited')
      s += ro
        ? ` Clase nelimitate; ați folosit ${String(m.classes_used)} în această perioadă.`
        : ` Unlimited classes; ${String(m.classes_used)} used this period.`;
    else
      s += ro
        ? ` Clase în această perioadă: ${String(m.classes_used)} din ${String(m.classes_allowance)} folosite, ${String(m.classes_left)} rămase.`
        : ` Classes this period: ${String(m.classes_used)} of ${String(m.classes_allowance)} used, ${String(m.classes_left)} left.`;
  }
  return s;
}

/** The gym's own results (memberships, trainer sessions); undefined: not one of them. */
function phraseGym(name: string, r: R, lang: Lang): string | undefined {
  const ro = lang === 'ro';
  if (name === 'list_membership_plans') {
    const plans = (r.plans as R[]) ?? [];
    if (plans.length === 0)
      return ro ? 'Momentan nu avem abonamente de vânzare.' : "We don't sell memberships at the moment.";
    const lines = plans.map(
      (p) =>
        `- ${String(p.name)}: ${String(p.price)} / ${periodPhrase(String(p.period), lang)}, ${classesPhrase(p.classes, String(p.period), lang)}`,
    );
    return (ro ? 'Abonamentele noastre:\n' : 'Our memberships:\n') + lines.join('\n');
  }
  if (name === 'my_membership') {
    const ms = (r.memberships as R[]) ?? [];
    if (ms.length === 0)
      return ro
        ? 'Nu aveți niciun abonament în acest moment. Doriți să vedeți abonamentele noastre?'
        : 'You have no membership at the moment. Would you like to see our plans?';
    return ms.map((m) => phraseMembership(m, lang)).join('\n');
  }
  if (name === 'request_membership' && r.requested) {
    const m = r.requested as R;
    return ro
      ? `Am înregistrat cererea pentru abonamentul ${String(m.plan)} (${String(m.price)}), începând cu ${String(m.starts)}. Este în așteptare: plătiți la recepție și personalul îl activează. Referință: ${String(m.reference)}.`
      : `I've noted your request for the ${String(m.plan)} membership (${String(m.price)}), starting ${String(m.starts)}. It is pending: pay at the front desk and staff will activate it. Reference: ${String(m.reference)}.`;
  }
  if (name === 'list_trainers') {
    const sessions = (r.sessions as R[]) ?? [];
    if (sessions.length === 0)
      return ro
        ? 'Momentan nu oferim antrenamente personale.'
        : "We don't offer personal training sessions at the moment.";
    const lines = sessions.map((x) => {
      const who = ((x.trainers as string[]) ?? []).join(', ');
      return `- ${String(x.name)}: ${String(x.price)} (${String(x.duration_minutes)} min)${who ? (ro ? `, cu ${who}` : `, with ${who}`) : ''}`;
    });
    return (ro ? 'Antrenamente personale:\n' : 'Personal training:\n') + lines.join('\n');
  }
  const withWho = (b: R) =>
    b.trainer ? (ro ? ` cu ${String(b.trainer)}` : ` with ${String(b.trainer)}`) : '';
  if (r.booked && (r.booked as R).trainer) {
    const b = r.booked as R;
    return ro
      ? `Gata! V-am programat la ${String(b.service)}${withWho(b)} pe ${String(b.date)} la ${String(b.time)}. Referință: ${String(b.reference)}.`
      : `Done! Your ${String(b.service)}${withWho(b)} is booked for ${String(b.date)} at ${String(b.time)}. Reference: ${String(b.reference)}.`;
  }
  if (r.rescheduled && (r.rescheduled as R).trainer) {
    const b = r.rescheduled as R;
    return ro
      ? `Am mutat sesiunea${withWho(b)} pe ${String(b.date)} la ${String(b.time)}.`
      : `Your session${withWho(b)} is moved to ${String(b.date)} at ${String(b.time)}.`;
  }
  if (r.cancelled && (r.cancelled as R).trainer) {
    const b = r.cancelled as R;
    return ro
      ? `Am anulat sesiunea${withWho(b)} din ${String(b.date)} de la ${String(b.time)}.`
      : `Your session${withWho(b)} on ${String(b.date)} at ${String(b.time)} is cancelled.`;
  }
  if ('slots' in r && r.trainer) {
    const slots = r.slots as string[];
    if (slots.length === 0)
      return ro
        ? `${String(r.trainer)} nu mai are ore libere pe ${String(r.date)}.`
        : `${String(r.trainer)} has no free times on ${String(r.date)}.`;
    return ro
      ? `Ore libere cu ${String(r.trainer)} pe ${String(r.date)}: ${list(slots)}. Ce oră preferați?`
      : `Free times with ${String(r.trainer)} on ${String(r.date)}: ${list(slots)}. Which time suits you?`;
  }
  return undefined;
}

function phraseOne(name: string, r: R, lang: Lang): string {
  const ro = lang === 'ro';
  if (typeof r.error === 'string') return phraseError(r, lang);
  const gym = phraseGym(name, r, lang);
  if (gym !== undefined) return gym;
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
    const times = withPlaces(slots, r.spots_left, lang);
    return ro
      ? `Ore libere pentru ${String(r.service)} pe ${String(r.date)}: ${times}. Ce oră preferați?`
      : `Free times for ${String(r.service)} on ${String(r.date)}: ${times}. Which time suits you?`;
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

/** `10:00 (3 places left), 11:00 (1 place left)` for a class; the bare times otherwise. */
function withPlaces(times: unknown[], spots: unknown, lang: Lang): string {
  if (!spots || typeof spots !== 'object') return list(times);
  const left = spots as Record<string, unknown>;
  return times
    .map((t) => {
      const n = left[String(t)];
      if (typeof n !== 'number') return String(t);
      if (lang === 'ro') return `${String(t)} (${n === 1 ? 'un loc liber' : `${n} locuri libere`})`;
      return `${String(t)} (${n} ${n === 1 ? 'place' : 'places'} left)`;
    })
    .join(', ');
}

function phraseError(r: R, lang: Lang): string {
  const ro = lang === 'ro';
  const code = String(r.error);
  const alts = Array.isArray(r.alternatives) && r.alternatives.length > 0 ? list(r.alternatives) : undefined;
  const who = typeof r.trainer === 'string' ? (ro ? ` cu ${r.trainer}` : ` with ${r.trainer}`) : '';
  if (code === 'SIMPTU_ERR_BOOKING_CONFLICT')
    return ro
      ? `Ora aceea nu mai este liberă${who}.${alts ? ` Ore libere în aceeași zi: ${alts}.` : ''}`
      : `That time is no longer available${who}.${alts ? ` Free times that day: ${alts}.` : ''}`;
  if (code === 'SIMPTU_ERR_CLASS_FULL') {
    const d = (r.details as R | null) ?? {};
    const times = Array.isArray(r.alternatives) && r.alternatives.length > 0 ? r.alternatives : undefined;
    const other = typeof r.alternatives_date === 'string' ? r.alternatives_date : undefined;
    const sameDay = other === undefined || other === r.date;
    const places = times ? withPlaces(times, r.spots_left, lang) : undefined;
    const full = ro
      ? `Clasa este plină (toate cele ${String(d.capacity)} locuri sunt ocupate).`
      : `That class is full (all ${String(d.capacity)} places are taken).`;
    if (!places)
      return ro
        ? `${full} Nu găsesc locuri libere în zilele următoare.`
        : `${full} I can't find free places in the next days.`;
    if (sameDay)
      return ro
        ? `${full} Mai sunt locuri în aceeași zi la: ${places}. Doriți una dintre ele?`
        : `${full} There are places that day at: ${places}. Would you like one of those?`;
    return ro
      ? `${full} Următoarele locuri libere sunt pe ${other}: ${places}. Doriți una dintre ele?`
      : `${full} The next free places are on ${other}: ${places}. Would you like one of those?`;
  }
  if (code === 'SIMPTU_ERR_CLASS_ALREADY_BOOKED') {
    const ref = typeof r.reference === 'string' ? r.reference : undefined;
    return ro
      ? `Aveți deja un loc la această clasă${ref ? ` (referință: ${ref})` : ''}.`
      : `You already have a place in this class${ref ? ` (reference: ${ref})` : ''}.`;
  }
  if (code === 'SIMPTU_ERR_MEMBERSHIP_REQUIRED') {
    const reason = (r.details as R | null)?.reason;
    const why =
      reason === 'pending'
        ? ro
          ? ' Abonamentul dumneavoastră este încă în așteptare: personalul îl activează după plata la recepție.'
          : ' Yours is still pending: staff activate it once it is paid at the front desk.'
        : reason === 'frozen'
          ? ro
            ? ' Abonamentul dumneavoastră este suspendat.'
            : ' Your membership is frozen.'
          : ro
            ? ' Doriți să vedeți abonamentele noastre?'
            : ' Would you like to see our membership plans?';
    return ro
      ? `Pentru a vă programa la o clasă aveți nevoie de un abonament activ.${why}`
      : `Booking a class needs an active membership.${why}`;
  }
  if (code === 'SIMPTU_ERR_CLASS_ALLOWANCE_EXHAUSTED') {
    const d = (r.details as R | null) ?? {};
    return ro
      ? `Ați folosit toate cele ${String(d.allowance)} clase ale abonamentului în această perioadă.`
      : `You've used all ${String(d.allowance)} classes of your membership for this period.`;
  }
  if (code === 'SIMPTU_ERR_MEMBERSHIP_OVERLAP') {
    const e = (r.existing as R | null) ?? {};
    const status = String(e.status ?? '');
    const until = e.ends ? (ro ? ` până la ${String(e.ends)}` : ` until ${String(e.ends)}`) : '';
    return ro
      ? `Aveți deja un abonament (${STATUS_RO[status] ?? status}${until}), deci nu pot adăuga altul pentru aceeași perioadă.`
      : `You already have a membership (${status}${until}), so I can't add another for the same time.`;
  }
  if (code === 'PLAN_UNCLEAR')
    return ro
      ? `Ce abonament doriți? ${list((r.options as unknown[]) ?? [])}`
      : `Which plan would you like? ${list((r.options as unknown[]) ?? [])}`;
  if (code === 'TRAINER_UNKNOWN')
    return ro
      ? `Nu găsesc acest antrenor. Antrenorii noștri: ${list((r.options as unknown[]) ?? [])}. Cu cine doriți?`
      : `I can't find that trainer. Our trainers: ${list((r.options as unknown[]) ?? [])}. Who would you like?`;
  if (code === 'NO_TRAINER_SESSIONS')
    return ro
      ? 'Momentan nu oferim antrenamente personale.'
      : "We don't offer personal training sessions at the moment.";
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

/** The generic booking tools (a class, an appointment, a room). */
const BOOK_TOOLS = new Set(['book_appointment', 'book_class', 'reserve_room']);

/**
 * A slot question asked by the phrased results (which plan? which trainer? one of these other
 * times?), remembered like the model's own questions so the next message can answer it.
 */
function pendingAfterResults(messages: BaseMessage[]): Pending | undefined {
  let i = messages.length - 1;
  const results: BaseMessage[] = [];
  while (i >= 0 && messages[i]!.getType() === 'tool') results.unshift(messages[i--]!);
  const calls = new Map(((messages[i] as AIMessage | undefined)?.tool_calls ?? []).map((c) => [c.id, c]));
  for (const m of results) {
    const call = calls.get((m as unknown as { tool_call_id: string }).tool_call_id);
    const error = parse(textOf(m)).error;
    if (!call || typeof error !== 'string') continue;
    const a = call.args as { date?: string; time?: string; start_date?: string; trainer?: string };
    const when = { ...(a.date ? { date: a.date } : {}), ...(a.time ? { time: a.time } : {}) };
    // "Full / taken — would you like one of those?": the next message may be just a time.
    const offered = (parse(textOf(m)) as { alternatives?: unknown; alternatives_date?: unknown }) ?? {};
    if (
      BOOK_TOOLS.has(call.name) &&
      (error === 'SIMPTU_ERR_CLASS_FULL' || error === 'SIMPTU_ERR_BOOKING_CONFLICT') &&
      Array.isArray(offered.alternatives) &&
      offered.alternatives.length > 0
    ) {
      const date = typeof offered.alternatives_date === 'string' ? offered.alternatives_date : a.date;
      const service = (call.args as { service?: unknown }).service;
      return {
        intent: 'book',
        ...(typeof service === 'string' ? { service } : {}),
        ...(date ? { date } : {}),
      };
    }
    if (call.name === 'request_membership' && error === 'PLAN_UNCLEAR')
      return { intent: 'join', ...(a.start_date ? { date: a.start_date } : {}) };
    if (call.name === 'book_trainer_session' || call.name === 'trainer_availability') {
      const intent = call.name === 'book_trainer_session' ? 'trainer_book' : 'trainer_availability';
      if (error === 'TRAINER_UNKNOWN') return { intent, ...when, askTrainer: true };
      if (error === 'SERVICE_UNCLEAR')
        return { intent, ...when, ...(a.trainer ? { trainer: a.trainer } : {}) };
    }
  }
  return undefined;
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
