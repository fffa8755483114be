/**
 * The builtin model's "understanding": keyword patterns and slot extraction for the core
 * intents, in English and Romanian. Pure functions, deterministic, no I/O. This is a scripted
 * recogniser, NOT a language model: it knows the phrasings below and nothing else (docs/agent.md).
 */

export type Lang = 'en' | 'ro';

export const INTENTS = [
  'human',
  'cancel',
  'reschedule',
  'book',
  'availability',
  'prices',
  'access_code',
  'my_bookings',
  'rating',
  'greet',
  'thanks',
  'faq',
] as const;
export type Intent = (typeof INTENTS)[number];

/** Lower-case, without diacritics (ă→a, ș→s, ț→t, â/î→a/i), single spaces. */
export function fold(text: string): string {
  return text
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim();
}

const RO_HINTS =
  /\b(buna|salut|vreau|as vrea|programare|programarea|maine|azi|astazi|poimaine|anuleaza|anulez|multumesc|pret|preturi|cat costa|ce|aveti|pentru|sunteti|ora|la ora|luni|marti|miercuri|joi|vineri|sambata|duminica|un om|cineva|locuri|libere|camera|camere|rezerv\w*|muta|mutati|va rog|imi|sa|cu)\b/;

/** Romanian when it has Romanian diacritics or enough Romanian words; English otherwise. */
export function detectLanguage(text: string): Lang {
  if (/[ăâîșşțţ]/i.test(text)) return 'ro';
  const f = fold(text);
  const hits = f.match(new RegExp(RO_HINTS.source, 'g'))?.length ?? 0;
  return hits >= 1 && !/\b(the|please|want|book|can|my|i|is|at)\b/.test(f) ? 'ro' : hits >= 2 ? 'ro' : 'en';
}

/**
 * Common English words that are not Romanian ones (no `are`, `in`, `a`, `o`: Romanian words
 * too; `i` but not the Romanian `i-` of "i-am"). Names, times, dates, numbers and catalog words ("10-class pass", "Yoga", "Andrei",
 * "10:00") are in neither list, so such a message says nothing about the language.
 */
const EN_HINTS =
  /\b(the|please|want|book|can|my|i(?!-)|is|at|you|your|what|when|where|how|which|who|do|does|did|have|has|need|would|like|could|thanks|thank|hello|hi|hey|tomorrow|today|tonight|morning|afternoon|evening|and|for|with|me|it|this|that|there|to|of|on|any|yes|sure|next|week)\b/g;

/**
 * The language a message CLEARLY is, or undefined when it carries no sign of one (a name, a
 * time, a plan's name): Romanian for diacritics, else whichever of Romanian and common English
 * words it has more of.
 */
export function languageSignal(text: string): Lang | undefined {
  if (/[ăâîșşțţ]/i.test(text)) return 'ro';
  const f = fold(text);
  const ro = f.match(new RegExp(RO_HINTS.source, 'g'))?.length ?? 0;
  const en = f.match(EN_HINTS)?.length ?? 0;
  if (ro === 0 && en === 0) return undefined;
  // a mixed message ("Vreau yoga tomorrow") goes by the majority, Romanian on a tie
  return ro >= en ? 'ro' : 'en';
}

/**
 * The conversation's language: that of the customer's latest message that clearly has one, so
 * a short answer ("Andrei", "10:00", "10-class pass") keeps the language the conversation was
 * in until the customer clearly switches; `fallback` (the business's default) before any.
 */
export function conversationLanguage(humanTexts: readonly string[], fallback: Lang = 'en'): Lang {
  for (let i = humanTexts.length - 1; i >= 0; i--) {
    const lang = languageSignal(humanTexts[i]!);
    if (lang) return lang;
  }
  return fallback;
}

// Order matters: the first matching intent wins (a "cancel my appointment" is not a booking).
const PATTERNS: Array<[Intent, RegExp]> = [
  [
    'human',
    /\b(human|real person|a person|someone|staff|operator|reception\w*|talk to (an? )?(agent|person)|un om|o persoana|cineva|receptie|omul)\b/,
  ],
  ['cancel', /\b(cancel\w*|anul\w*)\b/],
  [
    'reschedule',
    /\b(reschedul\w*|move|postpone|change (my|the) (appointment|booking|time|class|reservation)|reprogram\w*|muta\w*|mutati|schimba\w*)\b/,
  ],
  ['access_code', /\b(access code|login code|cod(ul)? de acces)\b/],
  ['my_bookings', /\b(my (appointments|bookings|reservations)|programaril\w* mele|rezervaril\w* mele)\b/],
  [
    'book',
    /\b(book\w*|appointment|reserve|reservation|sign me up|join the|programare\w*|programez|programeaza\w*|programati|rezerv\w*|inscrie\w*)\b/,
  ],
  [
    'availability',
    /\b(availab\w*|free (slots?|times?|rooms?)|slots?|openings?|disponibil\w*|libere?|locuri)\b/,
  ],
  [
    'prices',
    /\b(prices?|pricing|cost\w*|how much|services|treatments|classes|room types|rooms|menu|pret\w*|cat costa|servicii|tratamente|clase|camere|tarif\w*)\b/,
  ],
  ['rating', /\b(rate|rating|review|feedback|recenzie|evalua\w*|nota)\b/],
  ['thanks', /^(thanks?|thank you|multumesc|mersi)\b/],
  [
    'greet',
    /^(hi|hello|hey|good (morning|afternoon|evening)|buna( ziua| dimineata| seara)?|salut(are)?|hei)\b/,
  ],
];

export function detectIntent(text: string): Intent {
  const f = fold(text);
  for (const [intent, re] of PATTERNS) if (re.test(f)) return intent;
  return 'faq';
}

const WEEKDAYS: Record<string, number> = {
  monday: 1,
  tuesday: 2,
  wednesday: 3,
  thursday: 4,
  friday: 5,
  saturday: 6,
  sunday: 7,
  luni: 1,
  marti: 2,
  miercuri: 3,
  joi: 4,
  vineri: 5,
  sambata: 6,
  duminica: 7,
};

function addDaysIso(date: string, n: number): string {
  const d = new Date(`${date}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

function isoWeekdayOf(date: string): number {
  const wd = new Date(`${date}T12:00:00Z`).getUTCDay();
  return wd === 0 ? 7 : wd;
}

/**
 * A local date `YYYY-MM-DD` named in `text`, relative to `today` (the tenant's local date):
 * ISO dates, `dd.mm[.yyyy]`, `dd/mm[/yyyy]`, today/tomorrow/day after tomorrow (and azi, mâine,
 * poimâine), weekday names (the next such day, today excluded).
 */
export function parseDate(text: string, today: string): string | undefined {
  const f = fold(text);
  const iso = /\b(\d{4})-(\d{2})-(\d{2})\b/.exec(f);
  if (iso) return `${iso[1]}-${iso[2]}-${iso[3]}`;
  const dm = /\b(\d{1,2})[./](\d{1,2})(?:[./](\d{4}))?\b/.exec(f);
  if (dm) {
    const day = Number(dm[1]);
    const month = Number(dm[2]);
    if (day >= 1 && day <= 31 && month >= 1 && month <= 12) {
      let year = dm[3] ? Number(dm[3]) : Number(today.slice(0, 4));
      const candidate = `${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
      if (!dm[3] && candidate < today) year += 1;
      return `${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
    }
  }
  if (/\b(day after tomorrow|poimaine)\b/.test(f)) return addDaysIso(today, 2);
  if (/\b(tomorrow|maine)\b/.test(f)) return addDaysIso(today, 1);
  if (/\b(today|tonight|azi|astazi|diseara)\b/.test(f)) return today;
  for (const [name, wd] of Object.entries(WEEKDAYS)) {
    if (new RegExp(`\\b${name}\\b`).test(f)) {
      const cur = isoWeekdayOf(today);
      const delta = (wd - cur + 7) % 7 || 7;
      return addDaysIso(today, delta);
    }
  }
  return undefined;
}

/** A wall-clock time `HH:MM` named in `text`: `10:30`, `10am`, `3 pm`, `at 10`, `la ora 10`, `ora 15`. */
export function parseTime(text: string): string | undefined {
  const f = fold(text);
  const pad = (h: number, m: number) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`;
  const hm = /\b([01]?\d|2[0-3])[:h]([0-5]\d)\b/.exec(f);
  if (hm) return pad(Number(hm[1]), Number(hm[2]));
  const ampm = /\b(1[0-2]|0?[1-9])\s*(am|pm)\b/.exec(f);
  if (ampm) {
    let h = Number(ampm[1]) % 12;
    if (ampm[2] === 'pm') h += 12;
    return pad(h, 0);
  }
  const at = /\b(?:at|la|ora|la ora)\s+([01]?\d|2[0-3])\b(?![./]\d)/.exec(f);
  if (at) return pad(Number(at[1]), 0);
  return undefined;
}

/** A number of nights (`2 nights`, `3 nopti`), for hotel stays. */
export function parseNights(text: string): number | undefined {
  const m = /\b(\d{1,2})\s*(nights?|nopti|noapte)\b/.exec(fold(text));
  return m ? Number(m[1]) : undefined;
}

/** A score 1–5 (`5 stars`, `nota 4`, a lone digit). */
export function parseScore(text: string): number | undefined {
  const m = /\b([1-5])\b/.exec(fold(text));
  return m ? Number(m[1]) : undefined;
}

export interface Utterance {
  lang: Lang;
  intent: Intent;
  date: string | undefined;
  time: string | undefined;
  nights: number | undefined;
  /** the text itself: tools match catalog names against it */
  text: string;
}

export function understand(text: string, today: string): Utterance {
  return {
    lang: detectLanguage(text),
    intent: detectIntent(text),
    date: parseDate(text, today),
    time: parseTime(text),
    nights: parseNights(text),
    text,
  };
}
