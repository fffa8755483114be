/**
 * Tool sets per business type and the per-tenant allow-list (guard rails, DESIGN §7).
 *
 * Policy, in order:
 *  1. the business type's tool set (a gym has no `issue_access_code`; only a gym has the
 *     membership and trainer-session tools of gym.ts);
 *  2. the tenant's `agent.tools.allow` (if set: only these) and `agent.tools.deny`;
 *  3. untrusted channels (e-mail): side-effect tools are refused at call time unless the
 *     tenant lists them in `agent.tools.untrustedAllow` — an e-mail can ask, not act.
 */
import { bookingTools, NOUNS } from './booking.ts';
import { GYM_TOOLS } from './gym.ts';
import {
  askForRating,
  handoffToStaff,
  identifyCustomer,
  issuePatientAccessCode,
  searchFaq,
  sendChannelMessage,
} from './shared.ts';
import type { AgentTool, BusinessType } from './types.ts';

export * from './types.ts';

const SHARED: AgentTool[] = [searchFaq, handoffToStaff, askForRating, identifyCustomer, sendChannelMessage];

export function toolSetFor(businessType: BusinessType): AgentTool[] {
  const own = bookingTools(NOUNS[businessType]);
  const extra =
    businessType === 'dental' ? [issuePatientAccessCode] : businessType === 'gym' ? [...GYM_TOOLS] : [];
  return [...own, ...extra, ...SHARED];
}

export interface ToolPolicy {
  /** only these tools (names); absent = the whole set */
  allow?: string[];
  deny?: string[];
  /** side-effect tools still allowed when the message came from an untrusted channel */
  untrustedAllow?: string[];
}

export function allowedTools(businessType: BusinessType, policy: ToolPolicy = {}): AgentTool[] {
  return toolSetFor(businessType).filter(
    (t) =>
      (policy.allow === undefined || policy.allow.includes(t.name)) && !(policy.deny ?? []).includes(t.name),
  );
}

export type CallVerdict = { ok: true; tool: AgentTool } | { ok: false; reason: string };

/** The guard rail every tool call passes, whatever the model produced. */
export function checkCall(
  name: string,
  tools: readonly AgentTool[],
  policy: ToolPolicy,
  untrusted: boolean,
): CallVerdict {
  const tool = tools.find((t) => t.name === name);
  if (!tool) return { ok: false, reason: `tool ${name} is not available to this assistant` };
  if (untrusted && tool.sideEffect && !(policy.untrustedAllow ?? []).includes(name))
    return { ok: false, reason: `tool ${name} changes data and the request came from an untrusted channel` };
  return { ok: true, tool };
}
