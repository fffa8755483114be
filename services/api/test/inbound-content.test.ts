/**
 * inbound-content.ts on its own: odd and hostile payload shapes never throw (a webhook must
 * answer 200 or 4xx, never 5xx), and the edge cases the route tests don't reach.
 */
import { describe, expect, it } from 'vitest';
import {
  describeLocation,
  isTwilioStatusCallback,
  messengerContent,
  twilioContent,
  whatsAppContent,
} from '../src/inbound-content.ts';

describe('inbound content', () => {
  it.each([
    null,
    undefined,
    42,
    'text',
    [],
    {},
    { type: null },
    { type: 'text', text: 'x' },
    { type: 'image', image: null },
  ])('WhatsApp %j never throws', (m) => {
    expect(() => whatsAppContent(m)).not.toThrow();
  });

  it('WhatsApp: a text without a body, an unknown interactive kind and a Flow answer', () => {
    expect(whatsAppContent({ type: 'text', text: {} })).toMatchObject({ unknown: 'text' });
    expect(
      whatsAppContent({ type: 'interactive', interactive: { type: 'call_permission_reply' } }),
    ).toMatchObject({
      kind: 'unknown:interactive',
      answer: true,
    });
    expect(
      whatsAppContent({
        type: 'interactive',
        interactive: { type: 'nfm_reply', nfm_reply: { name: 'Booking', response_json: '{"phone":"+40…"}' } },
      }),
    ).toEqual({ kind: 'interactive', text: '[Customer submitted the form "Booking"]', answer: true });
    // captions are one line and bounded
    const long = whatsAppContent({ type: 'image', image: { caption: `a\r\nb${'x'.repeat(5000)}` } })!;
    expect(long.text).not.toMatch(/[\r\n]/);
    expect(long.text.length).toBeLessThan(1100);
  });

  it.each([
    null,
    1,
    {},
    { message: null },
    { message: { mid: 'm', attachments: 'x' } },
    { postback: {} },
    { reaction: null },
  ])('Messenger %j never throws', (ev) => {
    expect(() => messengerContent(ev)).not.toThrow();
  });

  it('Messenger: an unknown attachment is recorded with its type; a message with nothing in it too', () => {
    expect(
      messengerContent({
        sender: { id: 'p' },
        message: { mid: 'm1', attachments: [{ type: 'poll', payload: {} }] },
      }),
    ).toEqual({
      id: 'm1',
      content: {
        kind: 'unknown:poll',
        text: '[Customer sent a message of a kind that cannot be shown here (poll)]',
        answer: true,
        unknown: 'poll',
      },
    });
    expect(messengerContent({ sender: { id: 'p' }, message: { mid: 'm2' } })).toMatchObject({
      id: 'm2',
      content: { unknown: 'message' },
    });
    expect(
      messengerContent({
        sender: { id: 'p' },
        message: {
          mid: 'm3',
          attachments: [{ type: 'location', title: 'Home', payload: { coordinates: { lat: 1.5, long: 2 } } }],
        },
      })?.content.text,
    ).toBe('[Customer shared a location: Home (latitude 1.5, longitude 2)]');
  });

  it('Twilio: status callbacks, a silly NumMedia, an inbound message', () => {
    expect(isTwilioStatusCallback({ MessageStatus: 'failed' })).toBe(true);
    expect(isTwilioStatusCallback({ SmsStatus: 'received', Body: 'hi' })).toBe(false);
    expect(isTwilioStatusCallback({ Body: 'hi' })).toBe(false);
    expect(twilioContent({ Body: 'hi', NumMedia: '-3' })).toEqual({ kind: 'text', text: 'hi', answer: true });
    expect(twilioContent({ Body: '', NumMedia: '1000' }).text).toMatch(/^\[Customer sent 10 attachments/);
  });

  it('locations without coordinates or names', () => {
    expect(describeLocation({})).toBe('[Customer shared a location]');
    expect(describeLocation({ latitude: 'x', longitude: 2, name: 'Park' })).toBe(
      '[Customer shared a location: Park]',
    );
  });
});
