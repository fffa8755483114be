/**
 * LangChain's async-local run context without a LangSmith run tree when nothing traces.
 *
 * LangGraph calls `AsyncLocalStorageProviderSingleton.runWithConfig` for every node, edge and
 * channel write of every step; it stores the step's config in the async-local store so that
 * runnables called inside (a chat model inside a node) inherit it. When no LangSmith tracer is
 * configured, @langchain/core (1.4) still builds a `RunTree` as that store — a UUIDv7
 * (`crypto.getRandomValues`), timestamps, environment reads — used for nothing but carrying the
 * config: 5.7 % of the agent's CPU in a profile of the Kafka benchmark, 12 % of the graph's
 * (benchmark graph phase, CPU per conversation 16.5 → 14.5 ms without it).
 *
 * `useLightRunContext()` wraps `runWithConfig`: when LangSmith tracing is off (none of the
 * `LANGSMITH_TRACING_V2`/`LANGCHAIN_TRACING_V2`/`LANGSMITH_TRACING`/`LANGCHAIN_TRACING` variables
 * is `true` at start-up, @langchain/core's own test) and the config carries no callback
 * handler, the store is a plain object with the same two fields the library reads back — the
 * config under `Symbol.for('lc:child_config')` and context variables under
 * `Symbol.for('lc:context_variables')` (both registered symbols of @langchain/core); otherwise
 * the library's own code runs unchanged. `langchain-context.test.ts` checks a node and the
 * runnables it calls still see the config and the caller's context variables, and that a
 * callback handler keeps the run tree.
 *
 * One difference: `setContextVariable` called INSIDE a node replaces the store with the
 * variables only (what @langchain/core does to any store that is not a run tree), so runnables
 * called later in that node no longer inherit the config. Nothing in the agent (or LangGraph)
 * calls it; a tool that needs it should pass its config explicitly.
 */
import { AsyncLocalStorageProviderSingleton } from '@langchain/core/singletons';

const LC_CHILD_KEY = Symbol.for('lc:child_config');
const CONTEXT_VARIABLES_KEY = Symbol.for('lc:context_variables');
const TRACING_VARIABLES = [
  'LANGSMITH_TRACING_V2',
  'LANGCHAIN_TRACING_V2',
  'LANGSMITH_TRACING',
  'LANGCHAIN_TRACING',
];
const WRAPPED = Symbol.for('simptu:light-run-context');

type Store = Record<PropertyKey, unknown> & { extra?: Record<PropertyKey, unknown> };
interface Provider {
  runWithConfig(config: unknown, callback: () => unknown, avoidCreatingRootRunTree?: boolean): unknown;
  getInstance(): { getStore(): Store | undefined; run(store: unknown, callback: () => unknown): unknown };
  [WRAPPED]?: true;
}

/** whether @langchain/core would trace to LangSmith (its `isTracingEnabled()`, read once) */
export function langSmithTracingEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return TRACING_VARIABLES.some((name) => env[name] === 'true');
}

function hasCallbackHandlers(config: unknown): boolean {
  const callbacks = (config as { callbacks?: unknown } | undefined)?.callbacks;
  if (callbacks === undefined || callbacks === null) return false;
  if (Array.isArray(callbacks)) return callbacks.length > 0;
  const handlers = (callbacks as { handlers?: unknown[] }).handlers;
  return !Array.isArray(handlers) || handlers.length > 0;
}

/**
 * Installs the wrapper once per process (idempotent). `tracing` defaults to the environment at
 * this call; with tracing on nothing is installed.
 */
export function useLightRunContext(tracing = langSmithTracingEnabled()): boolean {
  const provider = AsyncLocalStorageProviderSingleton as unknown as Provider;
  if (tracing || provider[WRAPPED]) return Boolean(provider[WRAPPED]);
  const original = provider.runWithConfig;
  provider.runWithConfig = function runWithConfig(
    this: Provider,
    config: unknown,
    callback: () => unknown,
    avoidCreatingRootRunTree?: boolean,
  ): unknown {
    if (hasCallbackHandlers(config)) return original.call(this, config, callback, avoidCreatingRootRunTree);
    const storage = this.getInstance();
    const previous = storage.getStore();
    let store: Store | undefined = avoidCreatingRootRunTree
      ? undefined
      : { extra: { [LC_CHILD_KEY]: config } };
    if (previous !== undefined && previous[CONTEXT_VARIABLES_KEY] !== undefined) {
      store ??= {};
      store[CONTEXT_VARIABLES_KEY] = previous[CONTEXT_VARIABLES_KEY];
    }
    return storage.run(store, callback);
  };
  provider[WRAPPED] = true;
  return true;
}
