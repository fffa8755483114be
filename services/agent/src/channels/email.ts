/**
 * E-mail ingest, agent side. The API's webhook (`POST /v1/webhooks/email/<tenant>`) only checks
 * the shared secret, stores nothing in clear and publishes `io.simptu.email.received` with the
 * raw MIME encrypted; parsing untrusted MIME happens here, with `mailparser`.
 *
 *  - A Booking.com reservation confirmation (From …@booking.com, "Booking number" in the text)
 *    becomes hotel reservations: a deterministic parser — no model involved, so nothing written
 *    in the mail can steer it — one booking per night of the stay (room types are booked per
 *    night, 00:00–24:00 local), idempotency key `booking.com:<number>:<night>`.
 *  - Any other e-mail becomes a conversation turn on the sender's `email` session, answered by
 *    the agent as UNTRUSTED input (side-effect tools refused, see tools/index.ts).
 *
 * The Booking.com format recognised is the plain-text "Key: value" block of their confirmation
 * mails (Booking number, Guest name, Guest email, Guest phone, Check-in, Check-out, Room);
 * Booking.com's real-time channel is their Connectivity API, which this does not implement.
 */
import { simpleParser } from 'mailparser';
import {
  addDays,
  createBooking,
  createCustomer,
  findCustomerByEmail,
  listServices,
  localDateMinutesToUtc,
  parseLocalDate,
  SimptuError,
  type DomainContext,
} from '@simptu/common';
import { matchService } from '../tools/booking.ts';

export const EMAIL_RECEIVED_TYPE = 'io.simptu.email.received';

export interface ParsedEmail {
  messageId: string | null;
  from: string | null;
  fromName: string | null;
  subject: string;
  text: string;
}

export async function parseEmail(raw: string | Buffer): Promise<ParsedEmail> {
  const m = await simpleParser(raw, { skipImageLinks: true, skipHtmlToText: false });
  const from = m.from?.value[0];
  return {
    messageId: m.messageId ?? null,
    from: from?.address?.toLowerCase() ?? null,
    fromName: from?.name || null,
    subject: m.subject ?? '',
    text: (m.text ?? '').slice(0, 20_000),
  };
}

export interface BookingComReservation {
  number: string;
  guestName: string | null;
  guestEmail: string | null;
  guestPhone: string | null;
  checkIn: string;
  checkOut: string;
  room: string | null;
}

function field(text: string, ...names: string[]): string | null {
  for (const n of names) {
    const m = new RegExp(`^\\s*${n}\\s*:\\s*(.+?)\\s*$`, 'im').exec(text);
    if (m) return m[1]!;
  }
  return null;
}

/** The reservation in a Booking.com confirmation, or null when the mail isn't one. */
export function parseBookingCom(mail: ParsedEmail): BookingComReservation | null {
  if (!mail.from || !/@([a-z0-9-]+\.)*booking\.com$/.test(mail.from)) return null;
  const number = field(mail.text, 'Booking number', 'Reservation number', 'Confirmation number');
  const checkIn = field(mail.text, 'Check-in', 'Arrival');
  const checkOut = field(mail.text, 'Check-out', 'Departure');
  if (!number || !/^\d{6,14}$/.test(number)) return null;
  if (!checkIn || !parseLocalDate(checkIn) || !checkOut || !parseLocalDate(checkOut) || checkOut <= checkIn)
    return null;
  return {
    number,
    guestName: field(mail.text, 'Guest name', 'Guest'),
    guestEmail: field(mail.text, 'Guest email', 'Email')?.toLowerCase() ?? null,
    guestPhone: field(mail.text, 'Guest phone', 'Phone'),
    checkIn,
    checkOut,
    room: field(mail.text, 'Room', 'Room type', 'Unit'),
  };
}

export type ImportResult =
  { ok: true; bookingIds: string[]; nights: number; created: number } | { ok: false; reason: string };

/** Creates (idempotently) the reservation's bookings in the tenant, in `ctx`'s transaction. */
export async function importBookingCom(ctx: DomainContext, r: BookingComReservation): Promise<ImportResult> {
  const rooms = await listServices(ctx, { kind: 'room_type', activeOnly: true });
  const room = matchService(rooms, r.room ?? undefined);
  if (!room) return { ok: false, reason: `no room type matches ${JSON.stringify(r.room)}` };
  let customer = r.guestEmail ? await findCustomerByEmail(ctx, r.guestEmail).catch(() => null) : null;
  if (!customer) {
    customer = await createCustomer(ctx, {
      displayName: r.guestName,
      ...(r.guestEmail ? { email: r.guestEmail } : {}),
      ...(r.guestPhone ? { phone: r.guestPhone } : {}),
    }).catch(async (err: unknown) => {
      // A phone/e-mail taken by another customer: keep the booking, drop the contact detail.
      if (err instanceof SimptuError && err.statusCode === 409)
        return createCustomer(ctx, { displayName: r.guestName });
      throw err;
    });
  }
  const ids: string[] = [];
  let created = 0;
  for (let night = r.checkIn; night < r.checkOut; night = addDays(night, 1)) {
    const res = await createBooking(ctx, {
      customerId: customer.id,
      serviceId: room.id,
      start: localDateMinutesToUtc(night, 0, ctx.timeZone),
      idempotencyKey: `booking.com:${r.number}:${night}`,
      source: 'email',
    });
    ids.push(res.booking.id);
    if (res.created) created++;
  }
  return { ok: true, bookingIds: ids, nights: ids.length, created };
}
