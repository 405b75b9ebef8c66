// What `osprey status` and /metrics say about the Go runtime-context probes
// (src/agent/golang/runtime-probes.ts): files probed (and why others are not), processes whose
// goroutine is read, the kernel's hand-off and goroutine counters.
import type { MetricFamily } from '../../metrics/prometheus.js';
import type { UprobeWatcher, WatchedFile } from '../tls/index.js';
import type { GoRuntimeFamily } from './runtime-probes.js';

export interface GoRuntimeStatus {
  files: WatchedFile[];
  counters: Record<string, number>;
}

/** status fields (undefined when runtime context is off) */
export function goRuntimeStatus(watcher: UprobeWatcher | undefined, family: GoRuntimeFamily | undefined): GoRuntimeStatus | undefined {
  if (!watcher || !family) return undefined;
  const counters: Record<string, number> = {};
  for (const [k, v] of Object.entries(family.counters as unknown as Record<string, number>)) counters[k] = v;
  for (const [k, v] of Object.entries(family.kernelCounters())) counters[`kernel_${k}`] = v;
  for (const [k, v] of Object.entries(watcher.counters as unknown as Record<string, number>)) counters[`watcher_${k}`] = v;
  return { files: watcher.files(), counters };
}

/** the osprey_go_runtime_* metric families */
export function goRuntimeMetricFamilies(watcher: UprobeWatcher | undefined, family: GoRuntimeFamily | undefined): MetricFamily[] {
  if (!watcher || !family) return [];
  const w = watcher.counters;
  const c = family.counters;
  const k = family.kernelCounters();
  return [
    {
      name: 'osprey_go_runtime_files_total',
      help: 'Executables met by the Go runtime-context watcher, by outcome (attached, detached, error, stripped, over_limit).',
      type: 'counter',
      samples: [
        { labels: { outcome: 'attached' }, value: w.files_attached },
        { labels: { outcome: 'detached' }, value: w.files_detached },
        { labels: { outcome: 'error' }, value: w.files_error },
        { labels: { outcome: 'stripped' }, value: w.files_stripped },
        { labels: { outcome: 'over_limit' }, value: w.files_over_limit },
      ],
    },
    { name: 'osprey_go_runtime_attach_errors_total', help: 'Go runtime-context uprobes that failed to attach.', type: 'counter', samples: [{ value: w.attach_errors }] },
    { name: 'osprey_go_runtime_files', help: 'Go executables with runtime-context uprobes attached now.', type: 'gauge', samples: [{ value: w.attached_now }] },
    { name: 'osprey_go_runtime_probes', help: 'Go runtime-context uprobes attached now.', type: 'gauge', samples: [{ value: w.probes_now }] },
    { name: 'osprey_go_runtime_processes', help: 'Go processes whose goroutine is read at their calls now.', type: 'gauge', samples: [{ value: c.processes_now }] },
    {
      name: 'osprey_go_runtime_events_total',
      help: 'Go runtime-context events in the kernel: client hand-offs bound (handoffs) or not (handoff_unbound), goroutine parents recorded (spawns), connection loops left without (pool_spawns), background readers aliased (aliases), unpaired newproc1 returns, unreadable runtime structures (read_fault).',
      type: 'counter',
      samples: Object.entries(k).map(([event, value]) => ({ labels: { event }, value })),
    },
  ];
}
