/**
 * A local Amazon Bedrock Runtime implementing the documented ConverseStream contract, for the
 * `bedrock` provider's tests (what @langchain/aws → @aws-sdk/client-bedrock-runtime really sends):
 *  - HTTP/2 (cleartext here), as the SDK's Bedrock Runtime client speaks it by default;
 *  - `POST /model/{modelId}/converse-stream` (and `/converse`, unstreamed);
 *  - AWS Signature Version 4: the `Authorization` header is parsed, the access key looked up
 *    (unknown → 403 `UnrecognizedClientException`), the credential scope checked (region,
 *    service `bedrock`), `x-amz-date` within 5 minutes, a configured session token required in a
 *    signed `x-amz-security-token`, and the signature RECOMPUTED with @smithy/signature-v4 over
 *    the request as received (the signed headers it names, the body's own SHA-256) → 403
 *    `InvalidSignatureException` on any difference, as AWS answers;
 *  - errors as restJson1 does: `x-amzn-ErrorType` header and `{"message": …}`;
 *  - the body validated like Bedrock does: a known model id, `messages` starting with a user
 *    turn and alternating roles, every assistant `toolUse` answered by a `toolResult` with its
 *    `toolUseId` in the next user turn, `toolConfig.tools[].toolSpec.inputSchema.json`;
 *  - the response in `application/vnd.amazon.eventstream` framing (encoded with
 *    @smithy/eventstream-codec), each frame `:message-type: event`, `:event-type`,
 *    `:content-type: application/json`: `messageStart`, `contentBlockStart` (toolUse),
 *    `contentBlockDelta` (`text` / `toolUse.input` JSON in pieces), `contentBlockStop`,
 *    `messageStop` with `stopReason`, `metadata` (usage, metrics) — with the `p` padding field
 *    Bedrock adds to event payloads.
 * What the model "says" is scripted by the test (`reply`), from the request it received.
 * @see https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html
 * @see https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
 * @see https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html (the framing)
 */
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { EventStreamCodec } from '@smithy/eventstream-codec';
import { SignatureV4 } from '@smithy/signature-v4';

export interface ConverseContentBlock {
  text?: string;
  toolUse?: { toolUseId: string; name: string; input: unknown };
  toolResult?: {
    toolUseId: string;
    content: Array<{ text?: string; json?: unknown }>;
    status?: 'success' | 'error';
  };
  [k: string]: unknown;
}

export interface ConverseRequest {
  messages: Array<{ role: 'user' | 'assistant'; content: ConverseContentBlock[] }>;
  system?: Array<{ text?: string }>;
  toolConfig?: {
    tools: Array<{ toolSpec?: { name: string; description?: string; inputSchema: { json: unknown } } }>;
  };
  inferenceConfig?: Record<string, unknown>;
  [k: string]: unknown;
}

/** One scripted assistant turn: text chunks, then optionally one tool call. */
export interface ConverseTurn {
  text?: string[];
  toolUse?: { name: string; input: Record<string, unknown> };
}

export interface AwsKey {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface RecordedConverseRequest {
  path: string;
  modelId: string;
  headers: http2.IncomingHttpHeaders;
  body: ConverseRequest;
  /** the access key id named in the signature (also when it was refused) */
  accessKeyId: string | undefined;
  status: number;
  errorType?: string;
}

export interface BedrockServer {
  /** the endpoint URL to configure as `baseURL` */
  url: string;
  region: string;
  requests: RecordedConverseRequest[];
  close(): Promise<void>;
}

class AwsError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(status: number, type: string, message: string) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

const validation = (message: string) => new AwsError(400, 'ValidationException', message);

/** node:crypto behind the Checksum interface @smithy/signature-v4 expects. */
type SourceData = string | ArrayBuffer | ArrayBufferView;
const bytes = (d: SourceData): string | Buffer =>
  typeof d === 'string'
    ? d
    : ArrayBuffer.isView(d)
      ? Buffer.from(d.buffer, d.byteOffset, d.byteLength)
      : Buffer.from(d);

class NodeSha256 {
  readonly #secret: string | Buffer | undefined;
  #hash: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: SourceData) {
    this.#secret = secret === undefined ? undefined : bytes(secret);
    this.#hash = this.#fresh();
  }
  #fresh() {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', this.#secret);
  }
  update(data: SourceData): void {
    this.#hash.update(bytes(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.#hash.digest()));
  }
  reset(): void {
    this.#hash = this.#fresh();
  }
}

const AUTH_RE =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/;

function amzDate(s: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)) : undefined;
}

/** Verifies the request's SigV4 signature the way AWS does; returns the access key id. */
async function verifySigV4(
  headers: http2.IncomingHttpHeaders,
  method: string,
  rawPath: string,
  body: Buffer,
  keys: readonly AwsKey[],
  region: string,
): Promise<string> {
  const auth = headers.authorization;
  if (typeof auth !== 'string')
    throw new AwsError(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
  const m = AUTH_RE.exec(auth);
  if (!m)
    throw new AwsError(
      403,
      'IncompleteSignatureException',
      `Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.`,
    );
  const [, accessKeyId, day, scopeRegion, service, signedHeaders, signature] = m as unknown as string[];
  const key = keys.find((k) => k.accessKeyId === accessKeyId);
  if (!key)
    throw new AwsError(
      403,
      'UnrecognizedClientException',
      'The security token included in the request is invalid.',
    );
  const xAmzDate = headers['x-amz-date'];
  const date = typeof xAmzDate === 'string' ? amzDate(xAmzDate) : undefined;
  if (!date || xAmzDate!.slice(0, 8) !== day)
    throw new AwsError(
      403,
      'InvalidSignatureException',
      'Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.',
    );
  if (Math.abs(Date.now() - date.getTime()) > 5 * 60_000)
    throw new AwsError(
      403,
      'InvalidSignatureException',
      `Signature expired: ${xAmzDate} is now earlier than the allowed window.`,
    );
  if (scopeRegion !== region || service !== 'bedrock')
    throw new AwsError(
      403,
      'InvalidSignatureException',
      `Credential should be scoped to a valid region and service 'bedrock'.`,
    );
  const signed = signedHeaders!.split(';');
  if (!signed.includes('host') && !signed.includes(':authority'))
    throw new AwsError(403, 'InvalidSignatureException', 'The host header must be signed.');
  if (key.sessionToken !== undefined) {
    if (headers['x-amz-security-token'] !== key.sessionToken || !signed.includes('x-amz-security-token'))
      throw new AwsError(
        403,
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
      );
  }

  // The canonical request from what arrived: the headers the client says it signed, the
  // payload hash of the body as received (not the client's claim of it).
  const toSign: Record<string, string> = {};
  for (const name of signed) {
    const v = name === 'host' ? (headers.host ?? headers[':authority']) : headers[name];
    if (v === undefined)
      throw new AwsError(403, 'InvalidSignatureException', `Signed header ${name} is missing.`);
    toSign[name] = Array.isArray(v) ? v.join(',') : String(v);
  }
  if ('x-amz-content-sha256' in toSign)
    toSign['x-amz-content-sha256'] = createHash('sha256').update(body).digest('hex');
  const url = new URL(rawPath, 'http://x');
  const signer = new SignatureV4({
    credentials: key,
    region,
    service: 'bedrock',
    sha256: NodeSha256,
    uriEscapePath: true,
  });
  const out = await signer.sign(
    {
      method,
      protocol: 'http:',
      hostname: url.hostname,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: toSign,
      body,
    },
    { signingDate: date },
  );
  const expected = /Signature=([0-9a-f]{64})/.exec(String(out.headers.authorization))?.[1] ?? '';
  const names = /SignedHeaders=([^,]+)/.exec(String(out.headers.authorization))?.[1];
  if (
    names !== signedHeaders ||
    expected.length !== signature!.length ||
    !timingSafeEqual(Buffer.from(expected), Buffer.from(signature!))
  )
    throw new AwsError(
      403,
      'InvalidSignatureException',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
    );
  return accessKeyId!;
}

/** Bedrock's Converse request validation, as far as the provider's requests exercise it. */
export function validateConverseRequest(raw: unknown): ConverseRequest {
  if (!raw || typeof raw !== 'object')
    throw validation('Malformed input request, please reformat your input and try again.');
  const b = raw as ConverseRequest;
  if (!Array.isArray(b.messages) || b.messages.length === 0)
    throw validation(
      'A conversation must start with a user message. Try again with a conversation that starts with a user message.',
    );
  if (b.messages[0]!.role !== 'user')
    throw validation(
      'A conversation must start with a user message. Try again with a conversation that starts with a user message.',
    );
  if (b.system !== undefined && !Array.isArray(b.system))
    throw validation('system: expected a list of blocks');
  for (const [i, t] of (b.toolConfig?.tools ?? []).entries()) {
    const spec = t.toolSpec;
    if (!spec || typeof spec.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(spec.name))
      throw validation(`toolConfig.tools.${i}.toolSpec.name: must match [a-zA-Z0-9_-]{1,64}`);
    if (!spec.inputSchema || typeof spec.inputSchema.json !== 'object')
      throw validation(`toolConfig.tools.${i}.toolSpec.inputSchema: a json schema is required`);
  }
  b.messages.forEach((m, i) => {
    if (m.role !== 'user' && m.role !== 'assistant')
      throw validation(`messages.${i}.role: must be user or assistant`);
    if (i > 0 && b.messages[i - 1]!.role === m.role)
      throw validation(
        'A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.',
      );
    if (!Array.isArray(m.content) || m.content.length === 0)
      throw validation(`messages.${i}.content: must contain at least one content block`);
    const uses = (i > 0 ? b.messages[i - 1]!.content : [])
      .filter((c) => c.toolUse)
      .map((c) => c.toolUse!.toolUseId);
    const results = m.content.filter((c) => c.toolResult).map((c) => c.toolResult!.toolUseId);
    if (m.role === 'assistant' && results.length > 0)
      throw validation(`messages.${i}.content: toolResult blocks are only allowed in user messages`);
    if (m.role === 'user') {
      if (results.length > uses.length)
        throw validation(
          `The number of toolResult blocks at messages.${i}.content exceeds the number of toolUse blocks of previous turn.`,
        );
      const missing = uses.filter((id) => !results.includes(id));
      if (missing.length > 0)
        throw validation(
          `Expected toolResult blocks at messages.${i}.content for the following Ids: ${missing.join(', ')}`,
        );
      for (const c of m.content.filter((x) => x.toolResult))
        if (!Array.isArray(c.toolResult!.content) || c.toolResult!.content.length === 0)
          throw validation(`messages.${i}.content: toolResult.content must not be empty`);
    }
  });
  return b;
}

const PAD = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

export async function startBedrockServer(options: {
  keys: readonly AwsKey[];
  region: string;
  /** model ids this "account" can invoke */
  models: readonly string[];
  reply: (body: ConverseRequest, ctx: { modelId: string; accessKeyId: string }) => ConverseTurn;
}): Promise<BedrockServer> {
  const requests: RecordedConverseRequest[] = [];
  const codec = new EventStreamCodec(
    (b: Uint8Array) => Buffer.from(b).toString('utf8'),
    (s: string) => new Uint8Array(Buffer.from(s, 'utf8')),
  );
  const frame = (eventType: string, payload: Record<string, unknown>): Uint8Array =>
    codec.encode({
      headers: {
        ':event-type': { type: 'string', value: eventType },
        ':content-type': { type: 'string', value: 'application/json' },
        ':message-type': { type: 'string', value: 'event' },
      },
      // Bedrock pads event payloads with a `p` field of random length.
      body: Buffer.from(
        JSON.stringify({ ...payload, p: PAD.slice(0, 1 + (randomBytes(1)[0]! % PAD.length)) }),
      ),
    });

  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      void (async () => {
        const requestId = randomUUID();
        const path = String(headers[':path'] ?? '/');
        const route = /^\/model\/([^/]+)\/(converse-stream|converse)$/.exec(
          new URL(path, 'http://x').pathname,
        );
        const modelId = route ? decodeURIComponent(route[1]!) : '';
        const raw = Buffer.concat(chunks);
        let body = {} as ConverseRequest;
        try {
          body = JSON.parse(raw.toString('utf8')) as ConverseRequest;
        } catch {
          /* validated below */
        }
        const accessKeyId = /Credential=([^/]+)\//.exec(String(headers.authorization ?? ''))?.[1];
        const rec: RecordedConverseRequest = { path, modelId, headers, body, accessKeyId, status: 200 };
        requests.push(rec);
        try {
          if (headers[':method'] !== 'POST' || !route)
            throw new AwsError(404, 'UnknownOperationException', 'Unknown operation');
          const key = await verifySigV4(
            headers,
            String(headers[':method']),
            path,
            raw,
            options.keys,
            options.region,
          );
          if (!String(headers['content-type']).startsWith('application/json'))
            throw validation('Content-Type must be application/json');
          if (!options.models.includes(modelId))
            throw validation('The provided model identifier is invalid.');
          validateConverseRequest(body);
          const turn = options.reply(body, { modelId, accessKeyId: key });
          if (route[2] === 'converse') {
            stream.respond({
              ':status': 200,
              'content-type': 'application/json',
              'x-amzn-requestid': requestId,
            });
            stream.end(JSON.stringify(converseOutput(turn)));
            return;
          }
          stream.respond({
            ':status': 200,
            'content-type': 'application/vnd.amazon.eventstream',
            'x-amzn-requestid': requestId,
          });
          for (const [type, payload] of converseEvents(turn)) stream.write(frame(type, payload));
          stream.end();
        } catch (err) {
          const e = err instanceof AwsError ? err : new AwsError(500, 'InternalServerException', String(err));
          rec.status = e.status;
          rec.errorType = e.type;
          stream.respond({
            ':status': e.status,
            'content-type': 'application/json',
            'x-amzn-requestid': requestId,
            'x-amzn-errortype': `${e.type}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
          });
          stream.end(JSON.stringify({ message: e.message }));
        }
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    region: options.region,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function toolUseId(): string {
  return `tooluse_${randomBytes(12).toString('base64url')}`;
}

function converseEvents(turn: ConverseTurn): Array<[string, Record<string, unknown>]> {
  const out: Array<[string, Record<string, unknown>]> = [['messageStart', { role: 'assistant' }]];
  let index = 0;
  if (turn.text?.length) {
    for (const text of turn.text)
      out.push(['contentBlockDelta', { contentBlockIndex: index, delta: { text } }]);
    out.push(['contentBlockStop', { contentBlockIndex: index }]);
    index++;
  }
  if (turn.toolUse) {
    out.push([
      'contentBlockStart',
      { contentBlockIndex: index, start: { toolUse: { toolUseId: toolUseId(), name: turn.toolUse.name } } },
    ]);
    const json = JSON.stringify(turn.toolUse.input);
    const size = Math.ceil(json.length / 3);
    for (let i = 0; i < json.length; i += size)
      out.push([
        'contentBlockDelta',
        { contentBlockIndex: index, delta: { toolUse: { input: json.slice(i, i + size) } } },
      ]);
    out.push(['contentBlockStop', { contentBlockIndex: index }]);
  }
  const outputTokens = Math.max(
    1,
    ((turn.text ?? []).join('').length + JSON.stringify(turn.toolUse ?? '').length) >> 2,
  );
  out.push(['messageStop', { stopReason: turn.toolUse ? 'tool_use' : 'end_turn' }]);
  out.push([
    'metadata',
    {
      usage: { inputTokens: 100, outputTokens, totalTokens: 100 + outputTokens },
      metrics: { latencyMs: 42 },
    },
  ]);
  return out;
}

function converseOutput(turn: ConverseTurn): Record<string, unknown> {
  const content: ConverseContentBlock[] = [
    ...(turn.text?.length ? [{ text: turn.text.join('') }] : []),
    ...(turn.toolUse
      ? [{ toolUse: { toolUseId: toolUseId(), name: turn.toolUse.name, input: turn.toolUse.input } }]
      : []),
  ];
  return {
    output: { message: { role: 'assistant', content } },
    stopReason: turn.toolUse ? 'tool_use' : 'end_turn',
    usage: { inputTokens: 100, outputTokens: 10, totalTokens: 110 },
    metrics: { latencyMs: 42 },
  };
}
