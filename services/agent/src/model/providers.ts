/**
 * A tenant's chat model from its registry agent config (`{provider, name, baseURL, secretRef}`):
 *  - builtin:   the scripted offline model (builtin.ts);
 *  - openai:    @langchain/openai `ChatOpenAI`; `baseURL` makes it any OpenAI-compatible server
 *               (vLLM, Ollama, LM Studio, a gateway); key from the Secret's `apiKey`;
 *  - anthropic: @langchain/anthropic `ChatAnthropic` (Messages API, streamed); key `apiKey`;
 *               `baseURL` is the API root WITHOUT `/v1` (the SDK appends `/v1/messages`);
 *  - bedrock:   @langchain/aws `ChatBedrockConverse` (ConverseStream) on a BedrockRuntimeClient
 *               built here: region/credentials from the Secret (`region`, `accessKeyId`,
 *               `secretAccessKey`, optional `sessionToken`) or the default AWS chain; `baseURL`
 *               is the full endpoint URL (VPC endpoint, proxy, a local server). Not
 *               ChatBedrockConverse's `endpointHost`: it prefixes `https://` to a bare host, and
 *               its `clientOptions.endpoint` is overwritten, so a URL with a scheme and port never
 *               arrived.
 * Models are built once per tenant + config and reused. A config that cannot make a model
 * (missing Secret, …) yields a model that fails every call with the ModelConfigError, so the
 * conversation gets the runtime's polite error reply and an `agent.error` event instead of a
 * record retried forever.
 */
import { ChatOpenAI } from '@langchain/openai';
import { ChatAnthropic } from '@langchain/anthropic';
import { ChatBedrockConverse } from '@langchain/aws';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { BaseChatModel } from '@langchain/core/language_models/chat_models';
import type { BaseMessage } from '@langchain/core/messages';
import type { ChatResult } from '@langchain/core/outputs';
import type { ModelConfig } from '../registry.ts';
import type { SecretSource } from '../secrets.ts';
import { BuiltinChatModel } from './builtin.ts';

export class ModelConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelConfigError';
  }
}

function secret(secrets: SecretSource, cfg: ModelConfig, key: string): string | undefined {
  return cfg.secretRef ? secrets.get(cfg.secretRef.name, key) : undefined;
}

export function createChatModel(cfg: ModelConfig, secrets: SecretSource): BaseChatModel {
  switch (cfg.provider) {
    case 'builtin':
      return new BuiltinChatModel({});
    case 'openai': {
      const apiKey = secret(secrets, cfg, 'apiKey');
      if (!apiKey && !cfg.baseURL)
        throw new ModelConfigError(
          'openai needs secretRef with an apiKey (or a baseURL of a keyless server)',
        );
      return new ChatOpenAI({
        model: cfg.name ?? 'gpt-4o-mini',
        apiKey: apiKey ?? 'not-needed',
        streaming: true,
        maxRetries: 2,
        configuration: cfg.baseURL ? { baseURL: cfg.baseURL } : {},
      });
    }
    case 'anthropic': {
      const apiKey = secret(secrets, cfg, 'apiKey');
      if (!apiKey) throw new ModelConfigError('anthropic needs secretRef with an apiKey');
      return new ChatAnthropic({
        model: cfg.name ?? 'claude-sonnet-4-5',
        apiKey,
        streaming: true,
        maxRetries: 2,
        ...(cfg.baseURL ? { anthropicApiUrl: cfg.baseURL } : {}),
      });
    }
    case 'bedrock': {
      const region = secret(secrets, cfg, 'region') ?? 'us-east-1';
      const accessKeyId = secret(secrets, cfg, 'accessKeyId');
      const secretAccessKey = secret(secrets, cfg, 'secretAccessKey');
      const sessionToken = secret(secrets, cfg, 'sessionToken');
      if (Boolean(accessKeyId) !== Boolean(secretAccessKey))
        throw new ModelConfigError('bedrock needs both accessKeyId and secretAccessKey (or neither)');
      const client = new BedrockRuntimeClient({
        region,
        ...(accessKeyId && secretAccessKey
          ? { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) } }
          : {}),
        ...(cfg.baseURL ? { endpoint: cfg.baseURL } : {}),
      });
      return new ChatBedrockConverse({
        model: cfg.name ?? 'anthropic.claude-3-5-sonnet-20240620-v1:0',
        region,
        client,
        streaming: true,
      });
    }
  }
}

/**
 * Stands in for a model whose config is unusable: every call fails with the config error,
 * inside the graph run, where the runtime turns it into the polite reply + `agent.error`.
 */
export class UnavailableChatModel extends BaseChatModel {
  readonly #error: Error;

  constructor(error: Error) {
    super({});
    this.#error = error;
  }

  _llmType(): string {
    return 'unavailable';
  }

  override bindTools(): this {
    return this;
  }

  async _generate(_messages: BaseMessage[]): Promise<ChatResult> {
    throw this.#error;
  }
}

/** Caches one model per tenant and config. */
export class ModelCache {
  readonly #secrets: SecretSource;
  readonly #models = new Map<string, { key: string; model: BaseChatModel }>();

  constructor(secrets: SecretSource) {
    this.#secrets = secrets;
  }

  get(tenant: string, cfg: ModelConfig): BaseChatModel {
    const key = JSON.stringify(cfg);
    const hit = this.#models.get(tenant);
    if (hit && hit.key === key) return hit.model;
    let model: BaseChatModel;
    try {
      model = createChatModel(cfg, this.#secrets);
    } catch (err) {
      if (!(err instanceof ModelConfigError)) throw err;
      // not cached: the next message looks for the Secret again
      return new UnavailableChatModel(err);
    }
    this.#models.set(tenant, { key, model });
    return model;
  }
}
