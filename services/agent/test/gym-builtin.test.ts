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
