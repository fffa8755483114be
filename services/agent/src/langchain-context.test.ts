import { BaseCallbackHandler } from '@langchain/core/callbacks/base';
import { RunnableLambda, type RunnableConfig } from '@langchain/core/runnables';
import { AsyncLocalStorageProviderSingleton } from '@langchain/core/singletons';
import { getContextVariable, setContextVariable } from '@langchain/core/context';
import { Annotation, MemorySaver, START, StateGraph, getConfig } from '@langchain/langgraph';
import { describe, expect, it } from 'vitest';
import { langSmithTracingEnabled, useLightRunContext } from './langchain-context.ts';

const storeKind = () => {
  const store = (AsyncLocalStorageProviderSingleton as unknown as { getInstance(): { getStore(): unknown } })
    .getInstance()
    .getStore();
  return store === undefined ? 'none' : (store as object).constructor.name;
};

/** A graph whose node reports what a nested runnable sees through the async-local context. */
function probeGraph() {
  const S = Annotation.Root({
    seen: Annotation<Record<string, unknown>>({ reducer: (_a, b) => b, default: () => ({}) }),
  });
  const nested = RunnableLambda.from((_: unknown, config?: RunnableConfig) => ({
    threadId: config?.configurable?.thread_id,
    tag: config?.tags,
    variable: getContextVariable('simptu.probe'),
    store: storeKind(),
  }));
  return new StateGraph(S)
    .addNode('probe', async () => {
      const inNode = { threadId: getConfig().configurable?.thread_id, store: storeKind() };
      // invoked without a config: everything it sees comes from the async-local context
      return { seen: { inNode, nested: await nested.invoke(null) } };
    })
    .addEdge(START, 'probe')
    .compile({ checkpointer: new MemorySaver() });
}

describe('useLightRunContext', () => {
  it('reads LangSmith tracing like @langchain/core does', () => {
    expect(langSmithTracingEnabled({})).toBe(false);
    expect(langSmithTracingEnabled({ LANGCHAIN_TRACING_V2: 'false' })).toBe(false);
    expect(langSmithTracingEnabled({ LANGSMITH_TRACING: 'true' })).toBe(true);
    expect(useLightRunContext(true)).toBe(false); // tracing on: nothing installed
  });

  it('runs nodes without a LangSmith run tree, config and context variables still reaching nested runnables', async () => {
    expect(useLightRunContext(false)).toBe(true);
    expect(useLightRunContext(false)).toBe(true); // idempotent
    setContextVariable('simptu.probe', 'set by the caller');
    const out = await probeGraph().invoke({}, { configurable: { thread_id: 't-1' }, tags: ['probe'] });
    expect(out.seen).toEqual({
      inNode: { threadId: 't-1', store: 'Object' },
      nested: {
        threadId: 't-1',
        tag: expect.arrayContaining(['probe']),
        variable: 'set by the caller',
        store: 'Object',
      },
    });
  });

  it("keeps the library's run tree when a callback handler is configured", async () => {
    useLightRunContext(false);
    const started: string[] = [];
    class Recorder extends BaseCallbackHandler {
      name = 'recorder';
      override handleChainStart(
        _chain: unknown,
        _inputs: unknown,
        _runId: string,
        _parent?: string,
        _tags?: string[],
        _meta?: unknown,
        _type?: string,
        name?: string,
      ) {
        if (name) started.push(name);
      }
    }
    const out = await probeGraph().invoke(
      {},
      { configurable: { thread_id: 't-2' }, callbacks: [new Recorder()] },
    );
    expect((out.seen as { inNode: unknown }).inNode).toEqual({ threadId: 't-2', store: 'RunTree' });
    expect(started).toContain('probe');
  });
});
