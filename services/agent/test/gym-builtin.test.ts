/**
 * The builtin model's gym intents, pure (no I/O): memberships and trainer sessions in English
 * and Romanian become the gym tools' calls, only when those tools are bound; the answers are
 * phrased from the results; a "which trainer?" / "which plan?" question is answered by the next
 * message. Also: the gym's tool set and the per-tenant allow-list.
 */
import { describe, expect, it } from 'vitest';
import {
  AIMessage,
  HumanMessage,
  SystemMessage,
  ToolMessage,
  type BaseMessage,
} from '@langchain/core/messages';
import { BuiltinChatModel, gymIntent, trainerNameIn } from '../src/model/builtin.ts';
import { detectIntent } from '../src/model/intents.ts';
import { allowedTools, toolSetFor } from '../src/tools/index.ts';

const sys = new SystemMessage(
  'You are the assistant of "Iron Gym", a gym business.\nToday is 2026-03-09 (Monday), local time 09:00 in Europe/Bucharest.',
);
const GYM = toolSetFor('gym').map((t) => t.name);
const DENTAL = toolSetFor('dental').map((t) => t.name);
const model = new BuiltinChatModel({});

function plan(text: string, tools = GYM) {
  return model.respond([sys, new HumanMessage(text)], tools);
}

describe('gym tool set', () => {
  it('has the membership and trainer tools besides the class tools; others do not', () => {
    expect(GYM).toEqual(
      expect.arrayContaining([
        'list_classes',
        'book_class',
        'cancel_class_booking',
        'list_membership_plans',
        'my_membership',
        'request_membership',
        'list_trainers',
        'trainer_availability',
        'book_trainer_session',
        'reschedule_trainer_session',
        'cancel_trainer_session',
      ]),
    );
    expect(DENTAL).not.toContain('book_trainer_session');
    expect(toolSetFor('hotel').map((t) => t.name)).not.toContain('list_membership_plans');
    const names = allowedTools('gym', { deny: ['book_trainer_session'] }).map((t) => t.name);
    expect(names).not.toContain('book_trainer_session');
    expect(names).toContain('list_membership_plans');
    expect(allowedTools('gym', { allow: ['list_membership_plans'] }).map((t) => t.name)).toEqual([
      'list_membership_plans',
    ]);
    // side effects are marked, so untrusted channels can't trigger them
    const byName = new Map(toolSetFor('gym').map((t) => [t.name, t]));
    for (const n of ['request_membership', 'book_trainer_session', 'cancel_trainer_session'])
      expect(byName.get(n)!.sideEffect, n).toBe(true);
    for (const n of ['list_membership_plans', 'my_membership', 'list_trainers', 'trainer_availability'])
      expect(byName.get(n)!.sideEffect, n).toBe(false);
  });
});

describe('gym intents (EN + RO)', () => {
  it.each([
    ['What memberships do you have?', 'plans'],
    ['How much is the membership?', 'plans'],
    ['Cât costă abonamentul?', 'plans'],
    ['Ce abonamente aveți?', 'plans'],
    ['Do I have a membership?', 'my_membership'],
    ['When does my membership end?', 'my_membership'],
    ['Ce abonament am?', 'my_membership'],
    ['I want the monthly membership', 'join'],
    ['Vreau un abonament lunar', 'join'],
    ['Cancel my membership', 'membership_desk'],
    ['Anulați abonamentul', 'membership_desk'],
    ['I want a personal training session with Andrei tomorrow at 10', 'trainer_book'],
    ['Vreau o sesiune cu antrenorul mâine la 10', 'trainer_book'],
    ['Book a session with Maria on Friday at 9am', 'trainer_book'],
    ['How much is personal training?', 'trainer_prices'],
    ['Cât costă o sesiune cu antrenorul?', 'trainer_prices'],
    ['Is Andrei available tomorrow? Any free slots for a training session?', 'trainer_availability'],
    ['Cancel my training session', 'trainer_cancel'],
    ['Anulează sesiunea cu antrenorul', 'trainer_cancel'],
    ['Move my training session to Friday at 11:00', 'trainer_reschedule'],
  ])('%s → %s', (text, intent) => expect(gymIntent(text, detectIntent(text), GYM)).toBe(intent));

  it('leaves class talk, and other business types, alone', () => {
    for (const text of [
      'Book yoga tomorrow at 18:00',
      'Ce clase aveți?',
      'Anulați programarea, vă rog',
      'Hello',
    ])
      expect(gymIntent(text, detectIntent(text), GYM), text).toBeUndefined();
    expect(gymIntent('I want a personal training session', 'faq', DENTAL)).toBeUndefined();
    expect(gymIntent('What memberships do you have?', 'faq', DENTAL)).toBeUndefined();
  });

  it('finds the trainer named after with / cu, not dates or fillers', () => {
    expect(trainerNameIn('I want a personal training session with Andrei tomorrow at 10')).toBe('Andrei');
    expect(trainerNameIn('o sesiune cu antrenorul Andrei mâine')).toBe('Andrei');
    expect(trainerNameIn('vreau o sesiune cu antrenorul mâine la 10')).toBeUndefined();
    expect(trainerNameIn('a session with the trainer on Friday')).toBeUndefined();
    expect(trainerNameIn('training with Ștefan')).toBe('Ștefan');
  });
});

describe('BuiltinChatModel, gym', () => {
  it('turns the four sample sentences into real tool calls', () => {
    expect(plan('what memberships do you have').toolCalls[0]).toMatchObject({
      name: 'list_membership_plans',
      args: {},
    });
    expect(plan('cât costă abonamentul').toolCalls[0]).toMatchObject({ name: 'list_membership_plans' });
    expect(plan('I want a personal training session with Andrei tomorrow at 10').toolCalls[0]).toMatchObject({
      name: 'book_trainer_session',
      args: { date: '2026-03-10', time: '10:00', trainer: 'Andrei' },
    });
    const ro = plan('vreau o sesiune cu antrenorul mâine la 10').toolCalls[0]!;
    expect(ro).toMatchObject({ name: 'book_trainer_session', args: { date: '2026-03-10', time: '10:00' } });
    expect(ro.args.trainer).toBeUndefined();
  });

  it('asks for a missing time, then books with the remembered trainer', () => {
    const first = plan('I would like a training session with Maria tomorrow');
    expect(first.toolCalls).toHaveLength(0);
    expect(first.content).toMatch(/At what time/);
    const ai = new AIMessage({
      content: first.content,
      additional_kwargs: { builtin: { pending: first.pending } },
    });
    const second = model.respond(
      [
        sys,
        new HumanMessage('I would like a training session with Maria tomorrow'),
        ai,
        new HumanMessage('at 15:00'),
      ],
      GYM,
    );
    expect(second.toolCalls[0]).toMatchObject({
      name: 'book_trainer_session',
      args: { date: '2026-03-10', time: '15:00', trainer: 'Maria' },
    });
  });

  it('without the tool bound it does not book (allow-list)', () => {
    const r = plan(
      'I want a personal training session with Andrei tomorrow at 10',
      GYM.filter((n) => n !== 'book_trainer_session'),
    );
    expect(r.toolCalls.map((c) => c.name)).not.toContain('book_trainer_session');
  });

  function afterTool(human: string, name: string, result: unknown, args: Record<string, unknown> = {}) {
    const ai = new AIMessage({ content: '', tool_calls: [{ id: 'c1', name, args, type: 'tool_call' }] });
    const msgs: BaseMessage[] = [
      sys,
      new HumanMessage(human),
      ai,
      new ToolMessage({ tool_call_id: 'c1', content: JSON.stringify(result) }),
    ];
    return model.respond(msgs, GYM);
  }

  it('phrases plans, bookings and refusals in the customer language', () => {
    const plans = {
      plans: [
        { name: 'Monthly', price: '200.00 RON', period: 'month', classes: 'unlimited' },
        { name: 'Pass', price: '300.00 RON', period: '30 days', classes: 10 },
      ],
    };
    expect(afterTool('what memberships do you have', 'list_membership_plans', plans).content).toBe(
      'Our memberships:\n- Monthly: 200.00 RON / month, unlimited classes\n- Pass: 300.00 RON / 30 days, 10 classes',
    );
    expect(afterTool('cât costă abonamentul', 'list_membership_plans', plans).content).toBe(
      'Abonamentele noastre:\n- Monthly: 200.00 RON / lună, clase nelimitate\n- Pass: 300.00 RON / 30 zile, 10 clase',
    );
    const booked = {
      booked: {
        service: 'Personal training',
        trainer: 'Andrei',
        date: '2026-03-10',
        time: '10:00',
        reference: 'abcd1234',
      },
    };
    expect(
      afterTool('vreau o sesiune cu antrenorul mâine la 10', 'book_trainer_session', booked).content,
    ).toBe(
      'Gata! V-am programat la Personal training cu Andrei pe 2026-03-10 la 10:00. Referință: abcd1234.',
    );
    expect(
      afterTool('Book yoga tomorrow at 18', 'book_class', {
        error: 'SIMPTU_ERR_CLASS_ALLOWANCE_EXHAUSTED',
        message: 'x',
        details: { allowance: 8 },
      }).content,
    ).toBe("You've used all 8 classes of your membership for this period.");
    const unknown = afterTool(
      'A session with Bogdan tomorrow at 12',
      'book_trainer_session',
      { error: 'TRAINER_UNKNOWN', message: 'x', options: ['Andrei', 'Maria'] },
      { date: '2026-03-10', time: '12:00', trainer: 'Bogdan' },
    );
    expect(unknown.content).toMatch(/Our trainers: Andrei, Maria/);
    expect(unknown.pending).toEqual({
      intent: 'trainer_book',
      date: '2026-03-10',
      time: '12:00',
      askTrainer: true,
    });
  });
});

/**
 * A conversation with the builtin model, the tools answered by `tools` (name, args → result):
 * each customer message → the model's turn → (tool results → the phrased answer). Returns the
 * answers and the tool calls made.
 */
function converse(
  texts: string[],
  tools: (name: string, args: Record<string, unknown>) => unknown,
  system = sys,
): { answers: string[]; calls: Array<{ name: string; args: Record<string, unknown> }> } {
  const msgs: BaseMessage[] = [system];
  const answers: string[] = [];
  const calls: Array<{ name: string; args: Record<string, unknown> }> = [];
  for (const text of texts) {
    msgs.push(new HumanMessage(text));
    let r = model.respond(msgs, GYM);
    while (r.toolCalls.length > 0) {
      msgs.push(new AIMessage({ content: r.content, tool_calls: r.toolCalls }));
      for (const c of r.toolCalls) {
        calls.push({ name: c.name, args: c.args });
        msgs.push(new ToolMessage({ tool_call_id: c.id!, content: JSON.stringify(tools(c.name, c.args)) }));
      }
      r = model.respond(msgs, GYM);
    }
    msgs.push(
      new AIMessage({
        content: r.content,
        additional_kwargs: r.pending ? { builtin: { pending: r.pending } } : {},
      }),
    );
    answers.push(r.content);
  }
  return { answers, calls };
}

describe('the conversation keeps its language', () => {
  const PLANS = ['Monthly Unlimited (200.00 RON / month)', '10-class pass (300.00 RON / 30 days)'];
  const tools = (name: string, args: Record<string, unknown>): unknown => {
    if (name === 'request_membership')
      return /10-class/.test(String(args.plan))
        ? {
            requested: {
              plan: '10-class pass',
              price: '300.00 RON',
              starts: '2026-03-09',
              status: 'pending',
              reference: 'abcd1234',
            },
          }
        : { error: 'PLAN_UNCLEAR', message: 'which plan?', options: PLANS };
    if (name === 'book_trainer_session') {
      if (args.trainer === 'Bogdan')
        return { error: 'TRAINER_UNKNOWN', message: 'x', options: ['Andrei Popescu', 'Maria Ionescu'] };
      const trainer = args.trainer === 'Andrei' ? 'Andrei Popescu' : 'Maria Ionescu';
      return {
        booked: {
          service: 'Personal training',
          trainer,
          date: args.date,
          time: args.time,
          reference: 'feedbeef',
        },
      };
    }
    if (name === 'list_membership_plans')
      return {
        plans: [{ name: 'Monthly Unlimited', price: '200.00 RON', period: 'month', classes: 'unlimited' }],
      };
    if (name === 'search_faq') return { answer: null };
    return { error: 'UNEXPECTED', message: name };
  };

  it('answers language-neutral follow-ups ("10-class pass", "Andrei", "10:00") in Romanian', () => {
    const { answers, calls } = converse(
      [
        'Vreau un abonament',
        '10-class pass',
        'O sesiune cu antrenorul Bogdan mâine la 12',
        'Andrei',
        'Vreau o sesiune cu antrenorul poimâine',
        '10:00',
      ],
      tools,
    );
    expect(answers[0]).toMatch(/^Ce abonament doriți\?/);
    expect(answers[1]).toBe(
      'Am înregistrat cererea pentru abonamentul 10-class pass (300.00 RON), începând cu 2026-03-09. Este în așteptare: plătiți la recepție și personalul îl activează. Referință: abcd1234.',
    );
    expect(answers[2]).toMatch(
      /^Nu găsesc acest antrenor\. Antrenorii noștri: Andrei Popescu, Maria Ionescu/,
    );
    expect(answers[3]).toBe(
      'Gata! V-am programat la Personal training cu Andrei Popescu pe 2026-03-10 la 12:00. Referință: feedbeef.',
    );
    expect(answers[4]).toBe('La ce oră? (de exemplu 10:00)');
    expect(answers[5]).toMatch(/^Gata! V-am programat la Personal training .* pe 2026-03-11 la 10:00\./);
    expect(calls.map((c) => c.name)).toEqual([
      'request_membership',
      'request_membership',
      'book_trainer_session',
      'book_trainer_session',
      'book_trainer_session',
    ]);
    expect(calls[3]!.args).toMatchObject({ trainer: 'Andrei', date: '2026-03-10', time: '12:00' });
  });

  it('switches when the customer clearly writes English, and stays there for neutral follow-ups', () => {
    const { answers } = converse(
      ['Vreau un abonament', 'What memberships do you have?', 'I want a membership', '10-class pass'],
      tools,
    );
    expect(answers[0]).toMatch(/^Ce abonament doriți\?/);
    expect(answers[1]).toMatch(/^Our memberships:/);
    expect(answers[2]).toMatch(/^Which plan would you like\?/);
    expect(answers[3]).toMatch(/^I've noted your request for the 10-class pass membership/);
  });

  it('before any clear sign, answers in the business default language', () => {
    const ro = new SystemMessage(
      `${String(sys.content)}\nAnswer in the customer's language (the business's default locale is ro-RO). Be brief and friendly.`,
    );
    // "10-class pass" on its own is a question for the FAQ, which has no answer here
    expect(converse(['10-class pass'], tools, ro).answers[0]).toMatch(/^Nu știu răspunsul/);
    expect(converse(['10-class pass'], tools).answers[0]).toMatch(/^I don't know the answer/);
  });
});

describe('class places (capacity)', () => {
  function after(human: string, name: string, result: unknown) {
    const ai = new AIMessage({ content: '', tool_calls: [{ id: 'c1', name, args: {}, type: 'tool_call' }] });
    return model.respond(
      [
        sys,
        new HumanMessage(human),
        ai,
        new ToolMessage({ tool_call_id: 'c1', content: JSON.stringify(result) }),
      ],
      GYM,
    ).content;
  }
  const full = (alternatives: string[], date: string, spots: Record<string, number> = {}) => ({
    error: 'SIMPTU_ERR_CLASS_FULL',
    message: 'The class is full',
    details: { capacity: 12, start: '2026-03-10T16:00:00.000Z' },
    date: '2026-03-10',
    alternatives,
    alternatives_date: date,
    spots_left: spots,
  });

  it('says a class is full and offers the other times with places, that day or the next one', () => {
    expect(
      after('Book yoga tomorrow at 18:00', 'book_class', full(['19:00'], '2026-03-10', { '19:00': 3 })),
    ).toBe(
      'That class is full (all 12 places are taken). There are places that day at: 19:00 (3 places left). Would you like one of those?',
    );
    expect(after('Vreau la yoga mâine la 18', 'book_class', full(['09:00', '18:00'], '2026-03-11'))).toBe(
      'Clasa este plină (toate cele 12 locuri sunt ocupate). Următoarele locuri libere sunt pe 2026-03-11: 09:00, 18:00. Doriți una dintre ele?',
    );
    expect(after('Book yoga tomorrow at 18:00', 'book_class', full([], '2026-03-10'))).toMatch(
      /^That class is full .* I can't find free places in the next days\.$/,
    );
    expect(
      after('Book yoga tomorrow at 18:00', 'book_class', {
        error: 'SIMPTU_ERR_CLASS_ALREADY_BOOKED',
        message: 'x',
        details: { bookingId: 'abcd1234-0000' },
        reference: 'abcd1234',
      }),
    ).toBe('You already have a place in this class (reference: abcd1234).');
  });

  it('shows the places left in the class schedule', () => {
    const schedule = {
      service: 'Yoga',
      date: '2026-03-10',
      slots: ['10:00', '18:00'],
      spots_left: { '10:00': 1, '18:00': 12 },
      more: false,
    };
    expect(after('Any free slots for yoga tomorrow?', 'class_schedule', schedule)).toBe(
      'Free times for Yoga on 2026-03-10: 10:00 (1 place left), 18:00 (12 places left). Which time suits you?',
    );
    expect(after('Aveți locuri libere la yoga mâine?', 'class_schedule', schedule)).toBe(
      'Ore libere pentru Yoga pe 2026-03-10: 10:00 (un loc liber), 18:00 (12 locuri libere). Ce oră preferați?',
    );
  });
});

describe('after a full class', () => {
  it('takes a bare time as the answer to "would you like one of those?"', () => {
    const { answers, calls } = converse(
      ['Vreau să mă programez la yoga mâine la 18', '19:00'],
      (name, args) =>
        args.time === '18:00'
          ? {
              error: 'SIMPTU_ERR_CLASS_FULL',
              message: 'The class is full',
              details: { capacity: 12 },
              date: '2026-03-10',
              alternatives: ['19:00'],
              alternatives_date: '2026-03-10',
              spots_left: { '19:00': 4 },
            }
          : { booked: { service: 'Yoga', date: args.date, time: args.time, reference: 'c0ffee00' } },
    );
    expect(answers[0]).toMatch(/^Clasa este plină/);
    expect(calls[1]).toMatchObject({ name: 'book_class', args: { date: '2026-03-10', time: '19:00' } });
    expect(String(calls[1]!.args.service)).toMatch(/yoga/);
    expect(answers[1]).toBe('Gata! V-am programat pentru Yoga pe 2026-03-10 la 19:00. Referință: c0ffee00.');
  });
});
