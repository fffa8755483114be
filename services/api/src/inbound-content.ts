/**
 * What an inbound channel message says, for every kind a provider delivers — not only text
 * (routes/webhooks.ts). Each kind is handled deliberately:
 *
 *  - text, and the text of interactive replies (WhatsApp reply buttons, list replies, template
 *    quick-reply buttons; Messenger postbacks and quick replies; Twilio `ButtonText`) → the
 *    message's text, answered by the agent like any text;
 *  - media (image, video, audio / voice note, document, sticker; Twilio MMS `NumMedia > 0`),
 *    locations and shared contact cards → a message with a DESCRIPTION of what was sent
 *    (caption, file name, place name, address and coordinates, contact names — never the media
 *    itself, which we do not download), stored on the conversation and given to the agent, so
 *    it can answer ("I can't open photos here — could you describe it?") instead of the
 *    customer getting silence;
 *  - reactions → stored on the conversation for staff ("reacted 👍 to an earlier message") but
 *    not given to the agent: an emoji is not a turn to answer; removing a reaction → nothing;
 *  - status callbacks (WhatsApp `statuses[]`, Messenger `delivery`/`read`, Twilio
 *    `MessageStatus`) and system notices → no conversation, nothing stored;
 *  - any other or future kind (WhatsApp `unsupported`/`unknown`, polls, orders, …) → a message
 *    saying a message of that kind arrived, stored and answered, and `unknown` set so the route
 *    logs it: Meta still gets its 200 (a non-2xx makes it retry the delivery for days).
 *
 * Descriptions are in English and in brackets, so staff and the model can tell them from what
 * the customer typed; everything in them comes from the untrusted payload (captions, names)
 * and is treated like the customer's own text.
 * @see https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
 * @see https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/unsupported
 * @see https://developers.facebook.com/docs/messenger-platform/reference/webhook-events/messages
 * @see https://www.twilio.com/docs/messaging/guides/webhook-request
 */

export interface InboundContent {
  /** the kind, for logs (`text`, `interactive`, `image`, `location`, `reaction`, `unknown:<type>`…) */
  kind: string;
  /** the stored message body */
  text: string;
  /** given to the agent (`false`: recorded for staff only) */
  answer: boolean;
  /** the provider's type when we do not know it (logged by the route) */
  unknown?: string;
}

const MAX_PART = 1000;

const clip = (s: unknown): string =>
  typeof s === 'string'
    ? s
        .replace(/[\r\n]+/g, ' ')
        .trim()
        .slice(0, MAX_PART)
    : '';
const str = (s: unknown): string | undefined => (typeof s === 'string' && s.trim() ? s : undefined);
const obj = (v: unknown): Record<string, unknown> =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

const content = (kind: string, text: string, answer = true): InboundContent => ({ kind, text, answer });

function withCaption(what: string, caption: unknown): string {
  const c = clip(caption);
  return c ? `[${what}, with the caption: "${c}"]` : `[${what}]`;
}

/** A shared place: its name, address and coordinates (any may be missing). */
export function describeLocation(l: {
  latitude?: unknown;
  longitude?: unknown;
  name?: unknown;
  address?: unknown;
}): string {
  const lat = Number(l.latitude);
  const long = Number(l.longitude);
  const place = [clip(l.name), clip(l.address)].filter(Boolean).join(', ');
  const coords =
    Number.isFinite(lat) && Number.isFinite(long) && l.latitude !== undefined && l.longitude !== undefined
      ? `latitude ${lat}, longitude ${long}`
      : '';
  const parts = [place, coords ? (place ? `(${coords})` : coords) : ''].filter(Boolean).join(' ');
  return parts ? `[Customer shared a location: ${parts}]` : '[Customer shared a location]';
}

const MEDIA_NAMES: Record<string, string> = {
  image: 'a photo',
  video: 'a video',
  audio: 'an audio recording',
  voice: 'a voice message',
  document: 'a document',
  file: 'a file',
  sticker: 'a sticker',
  gif: 'a GIF',
  animated_image: 'an animated image',
};

/** Media we do not open: what it was, its caption or file name. */
function describeMedia(type: string, m: Record<string, unknown>): string {
  const what = MEDIA_NAMES[type] ?? `a ${type}`;
  const file = clip(m.filename);
  const base = `Customer sent ${what}${file ? ` ("${file}")` : ''} that cannot be opened here`;
  return withCaption(base, m.caption);
}

function unknownKind(type: string, detail?: string): InboundContent {
  const t = clip(type).slice(0, 60) || 'unknown';
  return {
    kind: `unknown:${t}`,
    text: `[Customer sent a message of a kind that cannot be shown here (${detail ? `${t}: ${clip(detail).slice(0, 60)}` : t})]`,
    answer: true,
    unknown: t,
  };
}

// ---------------------------------------------------------------------------------------------
// WhatsApp Cloud API: `entry[].changes[].value.messages[]`

/**
 * One WhatsApp Cloud API message; null when it is not a conversation message (a system notice,
 * a reaction being removed).
 */
export function whatsAppContent(raw: unknown): InboundContent | null {
  const m = obj(raw);
  const type = str(m.type) ?? 'unknown';
  const part = obj(m[type]);
  switch (type) {
    case 'text':
      return typeof part.body === 'string' ? content('text', part.body) : unknownKind(type);
    case 'button': {
      // a template's quick-reply button
      const t = str(part.text) ?? str(part.payload);
      return t ? content('interactive', t) : unknownKind(type);
    }
    case 'interactive': {
      const sub = str(part.type) ?? '';
      const reply = obj(part[sub]);
      if (sub === 'button_reply' || sub === 'list_reply') {
        const title = str(reply.title) ?? str(reply.id);
        if (!title) return unknownKind(type, sub);
        const description = clip(reply.description);
        return content('interactive', description ? `${title} (${description})` : title);
      }
      if (sub === 'nfm_reply') {
        // a WhatsApp Flow's answer: its body text, the form's answers stay out of the transcript
        return content('interactive', `[Customer submitted the form "${clip(reply.name) || 'flow'}"]`);
      }
      return unknownKind(type, sub || undefined);
    }
    case 'image':
    case 'video':
    case 'document':
    case 'sticker':
      return content(type, describeMedia(type, part));
    case 'audio':
      return part.voice === true
        ? content('voice', describeMedia('voice', part))
        : content('audio', describeMedia('audio', part));
    case 'location':
      return content('location', describeLocation(part));
    case 'contacts': {
      const names = (Array.isArray(m.contacts) ? m.contacts : [])
        .map((c) => clip(obj(obj(c).name).formatted_name))
        .filter(Boolean)
        .slice(0, 10);
      return content(
        'contacts',
        names.length
          ? `[Customer shared ${names.length === 1 ? 'a contact card' : 'contact cards'}: ${names.join('; ')}]`
          : '[Customer shared a contact card]',
      );
    }
    case 'reaction': {
      const emoji = clip(part.emoji);
      // an empty emoji removes an earlier reaction: nothing to record
      return emoji ? content('reaction', `[Customer reacted ${emoji} to an earlier message]`, false) : null;
    }
    case 'order': {
      const items = Array.isArray(part.product_items) ? part.product_items.length : 0;
      return content('order', `[Customer sent an order of ${items} item(s) from the catalogue]`);
    }
    case 'system':
    case 'request_welcome':
      return null;
    case 'unsupported':
    case 'unknown': {
      const detail =
        str(obj(m.unsupported).type) ?? str(obj(Array.isArray(m.errors) ? m.errors[0] : {}).title);
      return unknownKind(type, detail);
    }
    default:
      return unknownKind(type);
  }
}

// ---------------------------------------------------------------------------------------------
// Messenger / Instagram: `entry[].messaging[]`

export interface MessengerItem {
  /** de-duplication id */
  id: string;
  content: InboundContent;
}

/**
 * One Messenger / Instagram messaging event; null for our own echoes, delivery and read
 * receipts, reactions being removed and events without a message.
 */
export function messengerContent(raw: unknown): MessengerItem | null {
  const ev = obj(raw);
  const sender = str(obj(ev.sender).id);
  const stamp =
    typeof ev.timestamp === 'number' || typeof ev.timestamp === 'string' ? String(ev.timestamp) : '';
  if (ev.message !== undefined) {
    const msg = obj(ev.message);
    const mid = str(msg.mid);
    if (!mid || msg.is_echo === true) return null;
    const parts: string[] = [];
    const kinds: string[] = [];
    let unknown: string | undefined;
    if (typeof msg.text === 'string' && msg.text) {
      parts.push(msg.text);
      kinds.push(msg.quick_reply ? 'interactive' : 'text');
    }
    for (const a of Array.isArray(msg.attachments) ? msg.attachments.slice(0, 10) : []) {
      const at = obj(a);
      const t = str(at.type) ?? 'unknown';
      const payload = obj(at.payload);
      if (t === 'location') {
        const c = obj(payload.coordinates);
        parts.push(describeLocation({ latitude: c.lat, longitude: c.long, name: at.title }));
        kinds.push('location');
      } else if (t in MEDIA_NAMES) {
        const media = payload.sticker_id !== undefined || msg.sticker_id !== undefined ? 'sticker' : t;
        parts.push(describeMedia(media, {}));
        kinds.push(media);
      } else if (['fallback', 'share', 'story_mention', 'reel', 'ig_reel', 'template'].includes(t)) {
        const title = clip(at.title);
        parts.push(`[Customer shared a link or post${title ? `: "${title}"` : ''}]`);
        kinds.push('share');
      } else {
        const u = unknownKind(t);
        parts.push(u.text);
        kinds.push(u.kind);
        unknown ??= u.unknown;
      }
    }
    if (!parts.length) return { id: mid, content: unknownKind('message') };
    return {
      id: mid,
      content: { kind: kinds[0]!, text: parts.join('\n'), answer: true, ...(unknown ? { unknown } : {}) },
    };
  }
  if (ev.postback !== undefined) {
    // a button the customer tapped (persistent menu, button template, Get Started)
    const p = obj(ev.postback);
    const title = str(p.title) ?? str(p.payload);
    if (!title || !sender) return null;
    return { id: str(p.mid) ?? `postback:${sender}:${stamp}`, content: content('interactive', title) };
  }
  if (ev.reaction !== undefined) {
    const r = obj(ev.reaction);
    if (r.action !== 'react' || !sender) return null;
    const emoji = clip(r.emoji) || clip(r.reaction) || 'a reaction';
    return {
      id: `reaction:${str(r.mid) ?? ''}:${emoji}:${stamp}`,
      content: content('reaction', `[Customer reacted ${emoji} to an earlier message]`, false),
    };
  }
  // delivery, read, optin, referral, account linking…: no conversation message
  return null;
}

// ---------------------------------------------------------------------------------------------
// Twilio (SMS, MMS, WhatsApp)

/** Twilio `MessageStatus` values of status callbacks (an inbound message is `received`). */
const TWILIO_STATUSES = new Set([
  'accepted',
  'scheduled',
  'canceled',
  'queued',
  'sending',
  'sent',
  'failed',
  'delivered',
  'undelivered',
  'receiving',
  'read',
  'partially_delivered',
]);

/** True for a status callback of one of our messages (no conversation). */
export function isTwilioStatusCallback(params: Record<string, unknown>): boolean {
  const status = str(params.MessageStatus) ?? str(params.SmsStatus);
  return status !== undefined && TWILIO_STATUSES.has(status.toLowerCase());
}

/** One Twilio inbound message: text, MMS media, a WhatsApp location or button reply. */
export function twilioContent(params: Record<string, unknown>): InboundContent {
  const body = typeof params.Body === 'string' ? params.Body : '';
  const button = str(params.ButtonText);
  if (button) return content('interactive', button);
  const parts: string[] = [];
  let kind = 'text';
  if (body.trim()) parts.push(body);
  if (params.Latitude !== undefined && params.Longitude !== undefined) {
    parts.push(
      describeLocation({
        latitude: params.Latitude,
        longitude: params.Longitude,
        name: params.Label,
        address: params.Address,
      }),
    );
    kind = 'location';
  }
  const n = Math.min(Math.max(Number.parseInt(String(params.NumMedia ?? '0'), 10) || 0, 0), 10);
  if (n > 0) {
    const types = Array.from({ length: n }, (_, i) => clip(params[`MediaContentType${i}`]) || 'unknown type');
    parts.push(
      `[Customer sent ${n === 1 ? 'an attachment' : `${n} attachments`} (${types.join(', ')}) that cannot be opened here]`,
    );
    kind = 'media';
  }
  return content(kind, parts.join('\n'));
}
