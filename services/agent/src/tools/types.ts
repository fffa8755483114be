/**
 * What a tool is and what it receives. Tools call the SAME domain code as the API
 * (`@simptu/common` domain/*) through `ctx.db`, which runs inside the run's tenant transaction
 * (`withTenant`: the tenant's role and schema only), so no tool can reach another tenant.
 */
import { createHash } from 'node:crypto';
import type { Channel, DomainContext } from '@simptu/common';

export type BusinessType = 'dental' | 'gym' | 'hotel';

/** JSON Schema of a tool's arguments (what a model is shown). */
export interface JsonSchemaObject {
  type: 'object';
  properties: Record<string, unknown>;
  required?: string[];
  additionalProperties?: boolean;
}

export interface TenantContext {
  name: string;
  displayName: string;
  businessType: BusinessType;
  locale: string;
  timeZone: string;
  instructions?: string;
}

export interface SessionContext {
  id: string;
  customerId: string | null;
  channel: Channel;
}

export interface ToolContext {
  tenant: TenantContext;
  session: SessionContext;
  /** id of the inbound message this run answers */
  inboundId: string;
  /** the model's id for this call */
  toolCallId: string;
  /** idempotency key of this call's side effect: hash(session, inbound message, tool call) */
  idempotencyKey: string;
  /** runs `fn` with a domain context inside the run's tenant transaction (serialized) */
  db<T>(fn: (ctx: DomainContext) => Promise<T>): Promise<T>;
  /** the channel the message came in on is untrusted input (e-mail) */
  untrusted: boolean;
  now(): Date;
  /** asks the runtime to hand the conversation over after this step */
  requestHandoff(reason: string): void;
}

export interface AgentTool {
  name: string;
  description: string;
  schema: JsonSchemaObject;
  /** writes something (booking, code, state): refused for untrusted channels unless allowed */
  sideEffect: boolean;
  run(args: Record<string, unknown>, ctx: ToolContext): Promise<unknown>;
}

/** Stable across a crash-and-retry of the same call: same session, message and call id. */
export function idempotencyKeyFor(sessionId: string, inboundId: string, toolCallId: string): string {
  const h = createHash('sha256').update(`${sessionId}\n${inboundId}\n${toolCallId}`).digest('hex');
  return `agent:${h.slice(0, 40)}`;
}

/** A tool's refusal or failure, returned to the model (never thrown through the graph). */
export interface ToolError {
  error: string;
  message: string;
  [k: string]: unknown;
}

export function toolError(error: string, message: string, extra: Record<string, unknown> = {}): ToolError {
  return { error, message, ...extra };
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}
