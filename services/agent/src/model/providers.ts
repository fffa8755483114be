/**
 * A tenant's chat model from its registry agent config (`{provider, name, baseURL, secretRef}`):
 *  - builtin:   the scripted offline model (builtin.ts);
 *  - openai:    @langchain/openai `ChatOpenAI`; `baseURL` makes it any OpenAI-compatible server
 *               (vLLM, Ollama, LM Studio, a gateway); key from the Secret's `apiKey`;
 *  - anthropic: @langchain/anthropic `ChatAnthropic` (`anthropicApiUrl` = baseURL), key `apiKey`;
 *  - bedrock:   @langchain/aws `ChatBedrockConverse`; region/credentials from the Secret
 *               (`region`, `accessKeyId`, `secretAccessKey`, optional `sessionToken`) or the
 *               default AWS chain; `baseURL` becomes the endpoint host (VPC endpoints, proxies).
 * Models are built once per tenant + config and reused.
 */
import type { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { ChatOpenAI } from '@langchain/openai';
import { ChatAnthropic } from '@langchain/anthropic';
import { ChatBedrockConverse } from '@langchain/aws';
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
      return new ChatBedrockConverse({
        model: cfg.name ?? 'anthropic.claude-3-5-sonnet-20240620-v1:0',
        region,
        ...(accessKeyId && secretAccessKey
          ? { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) } }
          : {}),
        ...(cfg.baseURL ? { endpointHost: cfg.baseURL } : {}),
      });
    }
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
    const model = createChatModel(cfg, this.#secrets);
    this.#models.set(tenant, { key, model });
    return model;
  }
}
