import { describe, expect, it } from 'vitest';
import { AIMessage, HumanMessage, SystemMessage, ToolMessage } from '@langchain/core/messages';
import { BuiltinChatModel } from './builtin.ts';
import { detectIntent, detectLanguage, parseDate, parseTime } from './intents.ts';

const sys = new SystemMessage(
  'You are the assistant of "Smile Dental", a dental business.\nToday is 2026-03-09 (Monday), local time 09:00 in Europe/Bucharest.',
);
const TOOLS = [
  'list_treatments',
  'check_availability',
  'book_appointment',
  'reschedule_appointment',
  'cancel_appointment',
  'search_faq',
  'handoff_to_staff',
  'identify_customer',
];
const spec = (name: string) => ({
  type: 'function',
  function: { name, description: name, parameters: { type: 'object', properties: {} } },
});

describe('intents (EN + RO)', () => {
  it.each([
    ['Hi there', 'greet'],
    ['Bună ziua', 'greet'],
    ['What are your prices?', 'prices'],
    ['Ce prețuri aveți?', 'prices'],
    ['Any free slots tomorrow?', 'availability'],
    ['Aveți locuri libere mâine?', 'availability'],
    ['I want to book a cleaning tomorrow at 10:00', 'book'],
    ['Vreau o programare la detartraj mâine la ora 10', 'book'],
    ['Please reschedule my appointment to Friday at 11:00', 'reschedule'],
    ['Mutați programarea vineri la 11:00', 'reschedule'],
    ['Cancel my appointment', 'cancel'],
    ['Anulați programarea, vă rog', 'cancel'],
    ['I want to talk to a human', 'human'],
    ['Vreau să vorbesc cu un om', 'human'],
    ['Do you have parking?', 'faq'],
  ])('%s → %s', (text, intent) => expect(detectIntent(text)).toBe(intent));

  it('languages', () => {
    expect(detectLanguage('Vreau o programare mâine')).toBe('ro');
    expect(detectLanguage('Anulați programarea, vă rog')).toBe('ro');
    expect(detectLanguage('I want to book tomorrow')).toBe('en');
  });

  it('dates and times relative to the tenant day', () => {
    expect(parseDate('tomorrow', '2026-03-09')).toBe('2026-03-10');
    expect(parseDate('mâine', '2026-03-09')).toBe('2026-03-10');
    expect(parseDate('on Friday', '2026-03-09')).toBe('2026-03-13');
    expect(parseDate('luni', '2026-03-09')).toBe('2026-03-16');
    expect(parseDate('2026-04-01', '2026-03-09')).toBe('2026-04-01');
    expect(parseDate('12.03', '2026-03-09')).toBe('2026-03-12');
    expect(parseDate('no date here', '2026-03-09')).toBeUndefined();
    expect(parseTime('at 10:30')).toBe('10:30');
    expect(parseTime('3pm')).toBe('15:00');
    expect(parseTime('la ora 10')).toBe('10:00');
    expect(parseTime('nothing')).toBeUndefined();
  });
});

describe('BuiltinChatModel', () => {
  const model = new BuiltinChatModel({});

  it('turns a booking request into a real tool call, deterministic ids', () => {
    const msgs = [sys, new HumanMessage('I want to book a cleaning tomorrow at 10:00')];
    const a = model.respond(msgs, TOOLS);
    const b = model.respond(msgs, TOOLS);
    expect(a.toolCalls).toHaveLength(1);
    expect(a.toolCalls[0]).toMatchObject({
      name: 'book_appointment',
      args: { date: '2026-03-10', time: '10:00' },
    });
    expect(a.toolCalls[0]!.id).toBe(b.toolCalls[0]!.id);
  });

  it('asks for a missing slot and fills it from the next turn', () => {
    const first = model.respond([sys, new HumanMessage('Vreau o programare la detartraj')], TOOLS);
    expect(first.toolCalls).toHaveLength(0);
    expect(first.content).toMatch(/zi/);
    const ai = new AIMessage({
      content: first.content,
      additional_kwargs: { builtin: { pending: first.pending } },
    });
    const second = model.respond(
      [sys, new HumanMessage('Vreau o programare la detartraj'), ai, new HumanMessage('mâine la 11:00')],
      TOOLS,
    );
    expect(second.toolCalls[0]).toMatchObject({
      name: 'book_appointment',
      args: { date: '2026-03-10', time: '11:00' },
    });
    expect(String(second.toolCalls[0]!.args.service)).toMatch(/detartraj/);
  });

  it('phrases tool results in the customer language', () => {
    const ai = new AIMessage({
      content: '',
      tool_calls: [{ id: 'c1', name: 'book_appointment', args: {}, type: 'tool_call' }],
    });
    const tool = new ToolMessage({
      tool_call_id: 'c1',
      content: JSON.stringify({
        booked: { service: 'Detartraj', date: '2026-03-10', time: '10:00', reference: 'abcd1234' },
      }),
    });
    const ro = model.respond([sys, new HumanMessage('Vreau o programare mâine la 10'), ai, tool], TOOLS);
    expect(ro.content).toMatch(/V-am programat pentru Detartraj pe 2026-03-10 la 10:00/);
    const en = model.respond([sys, new HumanMessage('Book me tomorrow at 10'), ai, tool], TOOLS);
    expect(en.content).toMatch(/You're booked for Detartraj/);
  });

  it('refuses intents whose tool is not allowed for the tenant', () => {
    const r = model.respond(
      [sys, new HumanMessage('Cancel my appointment')],
      TOOLS.filter((t) => !t.startsWith('cancel')),
    );
    expect(r.toolCalls).toHaveLength(0);
    expect(r.content).toMatch(/can't do that/);
  });

  it('streams word tokens and tool call chunks through the LangChain interface', async () => {
    const bound = model.bindTools(TOOLS.map(spec));
    const tokens: string[] = [];
    let full;
    for await (const c of await bound.stream([sys, new HumanMessage('hello')])) {
      if (typeof c.content === 'string' && c.content) tokens.push(c.content);
      full = full ? full.concat(c) : c;
    }
    expect(tokens.length).toBeGreaterThan(5);
    expect(tokens.join('')).toMatch(/^Hello! I'm the assistant of Smile Dental/);
    let calls;
    for await (const c of await bound.stream([sys, new HumanMessage('What are your prices?')]))
      calls = calls ? calls.concat(c) : c;
    expect(calls!.tool_calls).toEqual([expect.objectContaining({ name: 'list_treatments', args: {} })]);
    const inv = await bound.invoke([sys, new HumanMessage('cancel my booking')]);
    expect(inv.tool_calls?.[0]?.name).toBe('cancel_appointment');
  });
});
