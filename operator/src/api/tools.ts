/**
 * The agent's tool catalogue as the Tenant API knows it: the names `spec.agent.tools` may list,
 * per business type, and which of them change data (the only ones `untrustedAllow` may name).
 *
 * A copy of what `services/agent/src/tools` builds (`toolSetFor`, `AgentTool.sideEffect`): the
 * operator does not depend on the agent package, and the CRD is generated from this list.
 * `services/agent/test/tool-policy.test.ts` fails when the two drift apart — add a tool to both.
 */

/** Every tool of each business type, in the agent's order (`toolSetFor`). */
export const AGENT_TOOLS_BY_BUSINESS_TYPE = {
  dental: [
    'list_treatments',
    'check_availability',
    'book_appointment',
    'reschedule_appointment',
    'cancel_appointment',
    'list_my_bookings',
    'issue_access_code',
    'search_faq',
    'handoff_to_staff',
    'ask_for_rating',
    'identify_customer',
    'send_message',
  ],
  gym: [
    'list_classes',
    'class_schedule',
    'book_class',
    'reschedule_class_booking',
    'cancel_class_booking',
    'list_my_bookings',
    'list_membership_plans',
    'my_membership',
    'request_membership',
    'list_trainers',
    'trainer_availability',
    'book_trainer_session',
    'reschedule_trainer_session',
    'cancel_trainer_session',
    'search_faq',
    'handoff_to_staff',
    'ask_for_rating',
    'identify_customer',
    'send_message',
  ],
  hotel: [
    'list_room_types',
    'room_availability',
    'reserve_room',
    'change_reservation',
    'cancel_reservation',
    'list_my_bookings',
    'search_faq',
    'handoff_to_staff',
    'ask_for_rating',
    'identify_customer',
    'send_message',
  ],
} as const;

export type AgentToolBusinessType = keyof typeof AGENT_TOOLS_BY_BUSINESS_TYPE;
/** A tool name of any business type. */
export type AgentToolName = (typeof AGENT_TOOLS_BY_BUSINESS_TYPE)[AgentToolBusinessType][number];

/**
 * Tools that write something (a booking, a code, a customer, a message): refused while the agent
 * handles untrusted input (e-mail) unless the tenant lists them in `agent.tools.untrustedAllow`.
 */
export const SIDE_EFFECT_TOOLS = [
  'book_appointment',
  'book_class',
  'book_trainer_session',
  'cancel_appointment',
  'cancel_class_booking',
  'cancel_reservation',
  'cancel_trainer_session',
  'change_reservation',
  'identify_customer',
  'issue_access_code',
  'request_membership',
  'reschedule_appointment',
  'reschedule_class_booking',
  'reschedule_trainer_session',
  'reserve_room',
  'send_message',
] as const satisfies readonly AgentToolName[];
export type SideEffectToolName = (typeof SIDE_EFFECT_TOOLS)[number];

/** Every tool name once, sorted (the CRD enum). */
export const AGENT_TOOL_NAMES: readonly AgentToolName[] = [
  ...new Set(Object.values(AGENT_TOOLS_BY_BUSINESS_TYPE).flat()),
].sort();
