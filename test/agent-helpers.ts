// An in-process agent that collects spans, for end-to-end span and linking tests.
import { Agent, type AgentOptions } from '../src/agent/agent.js';
import type { Span } from '../src/model/index.js';
import { waitFor } from './helpers.js';

export class SpanCollector {
  readonly spans: Span[] = [];
  readonly agent: Agent;

  constructor(holdMs = 300, capture?: AgentOptions['capture'], more?: Omit<AgentOptions, 'sink' | 'holdMs' | 'capture'>) {
    this.agent = new Agent({ sink: (s) => this.spans.push(...s), holdMs, ...(capture ? { capture } : {}), ...more });
    this.agent.start();
  }

  byPath(path: string): Span[] {
    return this.spans.filter((s) => s.attributes['url.path'] === path);
  }

  of(pid: number): Span[] {
    return this.spans.filter((s) => s.resource['process.pid'] === pid);
  }

  async waitSpans(what: string, pred: (s: Span[]) => boolean, timeoutMs = 8000): Promise<void> {
    await waitFor(what, () => pred(this.spans), timeoutMs);
  }

  async close(): Promise<void> {
    await this.agent.shutdown();
  }
}
