/**
 * A local Anthropic Messages API implementing the documented contract, for the `anthropic`
 * provider's tests (what @langchain/anthropic → @anthropic-ai/sdk really sends):
 *  - `POST /v1/messages`; `x-api-key` must be a known key (401 `authentication_error`),
 *    `anthropic-version` must be present (400 `invalid_request_error`); errors in the API's
 *    shape `{type:"error", error:{type, message}}` with a `request-id` header;
 *  - the body is validated like the API does: `model`, `max_tokens`, `messages` with `user` /
 *    `assistant` roles starting with a user turn, `tools[].input_schema` an object schema, and
 *    every assistant `tool_use` block answered by a `tool_result` block in the next user turn
 *    (and no `tool_result` without its `tool_use`);
 *  - `stream: true` answers with server-sent events: `message_start`, per block
 *    `content_block_start` → `content_block_delta` (`text_delta` / `input_json_delta`, the JSON
 *    split over several deltas, the first one empty as the API sends it) → `content_block_stop`,
 *    a `ping`, `message_delta` with `stop_reason` (`end_turn` / `tool_use`) and usage,
 *    `message_stop`; without `stream` the same turn as one Message object.
 * What the model "says" is scripted by the test (`reply`), from the request it received.
 * @see https://docs.anthropic.com/en/api/messages
 * @see https://docs.anthropic.com/en/docs/build-with-claude/streaming
 * @see https://docs.anthropic.com/en/api/errors
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type AnthropicBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> }
  | {
      type: 'tool_result';
      tool_use_id: string;
      content?: string | Array<{ type: 'text'; text: string }>;
      is_error?: boolean;
    }
  | { type: string; [k: string]: unknown };

export interface AnthropicMessagesRequest {
  model: string;
  max_tokens: number;
  messages: Array<{ role: 'user' | 'assistant'; content: string | AnthropicBlock[] }>;
  system?: string | Array<{ type: 'text'; text: string }>;
  tools?: Array<{ name: string; description?: string; input_schema: Record<string, unknown> }>;
  stream?: boolean;
  [k: string]: unknown;
}

/** One scripted assistant turn: text chunks, then optionally one tool call. */
export interface AnthropicTurn {
  text?: string[];
  toolUse?: { name: string; input: Record<string, unknown> };
}

export interface RecordedAnthropicRequest {
  headers: IncomingHttpHeaders;
  body: AnthropicMessagesRequest;
  /** the key the request authenticated with (also when it was refused) */
  apiKey: string | undefined;
  status: number;
}

export interface AnthropicServer {
  /** the API root to configure as `baseURL` (the SDK appends `/v1/messages`) */
  url: string;
  requests: RecordedAnthropicRequest[];
  close(): Promise<void>;
}

class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(status: number, type: string, message: string) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

const invalid = (message: string) => new ApiError(400, 'invalid_request_error', message);

function blocks(content: string | AnthropicBlock[]): AnthropicBlock[] {
  return typeof content === 'string' ? [{ type: 'text', text: content }] : content;
}

/** The API's request validation, as far as the provider's requests exercise it. */
export function validateMessagesRequest(raw: unknown): AnthropicMessagesRequest {
  if (!raw || typeof raw !== 'object') throw invalid('body: expected an object');
  const b = raw as AnthropicMessagesRequest;
  if (typeof b.model !== 'string' || !b.model) throw invalid('model: Field required');
  if (!Number.isInteger(b.max_tokens) || b.max_tokens < 1) throw invalid('max_tokens: Field required');
  if (!Array.isArray(b.messages) || b.messages.length === 0) throw invalid('messages: Field required');
  if (b.system !== undefined && typeof b.system !== 'string' && !Array.isArray(b.system))
    throw invalid('system: Input should be a valid string or list');
  for (const [i, t] of (b.tools ?? []).entries()) {
    if (typeof t.name !== 'string' || !/^[a-zA-Z0-9_-]{1,128}$/.test(t.name))
      throw invalid(`tools.${i}.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'`);
    if (!t.input_schema || t.input_schema.type !== 'object')
      throw invalid(`tools.${i}.input_schema.type: Input should be 'object'`);
  }
  if (b.messages[0]!.role !== 'user') throw invalid('messages: first message must use the "user" role');
  b.messages.forEach((m, i) => {
    if (m.role !== 'user' && m.role !== 'assistant')
      throw invalid(`messages.${i}.role: Input should be 'user' or 'assistant'`);
    if (typeof m.content !== 'string' && !Array.isArray(m.content))
      throw invalid(`messages.${i}.content: Input should be a valid string or list`);
    const uses = (i > 0 ? blocks(b.messages[i - 1]!.content) : [])
      .filter((x): x is Extract<AnthropicBlock, { type: 'tool_use' }> => x.type === 'tool_use')
      .map((x) => x.id);
    const results = blocks(m.content)
      .filter((x): x is Extract<AnthropicBlock, { type: 'tool_result' }> => x.type === 'tool_result')
      .map((x) => x.tool_use_id);
    if (m.role === 'user') {
      const missing = uses.filter((id) => !results.includes(id));
      if (missing.length > 0)
        throw invalid(
          `messages.${i}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`,
        );
      const orphan = results.filter((id) => !uses.includes(id));
      if (orphan.length > 0)
        throw invalid(
          `messages.${i}.content: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${orphan.join(', ')}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`,
        );
    } else if (results.length > 0) {
      throw invalid(`messages.${i}.content: \`tool_result\` blocks are only allowed in user messages`);
    }
  });
  return b;
}

function sse(res: ServerResponse, event: string, data: Record<string, unknown>): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`);
}

/** Splits a string into `n` roughly equal pieces (n ≥ 1). */
function pieces(s: string, n: number): string[] {
  const size = Math.max(1, Math.ceil(s.length / n));
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

export async function startAnthropicServer(options: {
  /** accepted API keys */
  apiKeys: readonly string[];
  /** may return a promise: the response waits for it (a model taking its time) */
  reply: (body: AnthropicMessagesRequest, apiKey: string) => AnthropicTurn | Promise<AnthropicTurn>;
}): Promise<AnthropicServer> {
  const requests: RecordedAnthropicRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const requestId = `req_${randomBytes(12).toString('hex')}`;
      const apiKey = typeof req.headers['x-api-key'] === 'string' ? req.headers['x-api-key'] : undefined;
      let body: AnthropicMessagesRequest = {} as AnthropicMessagesRequest;
      const record = (status: number) => requests.push({ headers: req.headers, body, apiKey, status });
      try {
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        if (req.method !== 'POST' || path !== '/v1/messages')
          throw new ApiError(404, 'not_found_error', `${req.method} ${path} not found`);
        let parsed = true;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as AnthropicMessagesRequest;
        } catch {
          parsed = false;
        }
        if (!apiKey || !options.apiKeys.includes(apiKey))
          throw new ApiError(401, 'authentication_error', 'invalid x-api-key');
        if (!parsed)
          throw invalid('There was an issue with the format or content of your request: invalid JSON');
        if (!req.headers['anthropic-version']) throw invalid('anthropic-version: header is required');
        if (!String(req.headers['content-type']).startsWith('application/json'))
          throw invalid('content-type must be application/json');
        validateMessagesRequest(body);
        const turn = await options.reply(body, apiKey);
        record(200);
        respond(res, body, turn, requestId);
      } catch (err) {
        const e = err instanceof ApiError ? err : new ApiError(500, 'api_error', String(err));
        record(e.status);
        res.writeHead(e.status, { 'content-type': 'application/json', 'request-id': requestId }).end(
          JSON.stringify({
            type: 'error',
            error: { type: e.type, message: e.message },
            request_id: requestId,
          }),
        );
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function respond(
  res: ServerResponse,
  body: AnthropicMessagesRequest,
  turn: AnthropicTurn,
  requestId: string,
): void {
  const text = (turn.text ?? []).join('');
  const toolId = `toolu_${randomBytes(12).toString('hex')}`;
  const content: AnthropicBlock[] = [
    ...(turn.text?.length ? [{ type: 'text' as const, text }] : []),
    ...(turn.toolUse
      ? [{ type: 'tool_use' as const, id: toolId, name: turn.toolUse.name, input: turn.toolUse.input }]
      : []),
  ];
  const stopReason = turn.toolUse ? 'tool_use' : 'end_turn';
  const inputTokens = JSON.stringify(body.messages).length >> 2;
  const outputTokens = Math.max(1, (text.length + JSON.stringify(turn.toolUse ?? '').length) >> 2);
  const message = {
    id: `msg_${randomBytes(12).toString('hex')}`,
    type: 'message',
    role: 'assistant',
    model: body.model,
    stop_sequence: null,
  };
  if (!body.stream) {
    res.writeHead(200, { 'content-type': 'application/json', 'request-id': requestId }).end(
      JSON.stringify({
        ...message,
        content,
        stop_reason: stopReason,
        usage: { input_tokens: inputTokens, output_tokens: outputTokens },
      }),
    );
    return;
  }
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'request-id': requestId,
  });
  sse(res, 'message_start', {
    message: {
      ...message,
      content: [],
      stop_reason: null,
      usage: { input_tokens: inputTokens, output_tokens: 1 },
    },
  });
  let index = 0;
  if (turn.text?.length) {
    sse(res, 'content_block_start', { index, content_block: { type: 'text', text: '' } });
    sse(res, 'ping', {});
    for (const t of turn.text)
      sse(res, 'content_block_delta', { index, delta: { type: 'text_delta', text: t } });
    sse(res, 'content_block_stop', { index });
    index++;
  }
  if (turn.toolUse) {
    sse(res, 'content_block_start', {
      index,
      content_block: { type: 'tool_use', id: toolId, name: turn.toolUse.name, input: {} },
    });
    for (const part of ['', ...pieces(JSON.stringify(turn.toolUse.input), 3)])
      sse(res, 'content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: part } });
    sse(res, 'content_block_stop', { index });
  }
  sse(res, 'message_delta', {
    delta: { stop_reason: stopReason, stop_sequence: null },
    usage: { output_tokens: outputTokens },
  });
  sse(res, 'message_stop', {});
  res.end();
}
