// The two PriorityClasses. A DaemonSet pod that lands on a full node would otherwise wait
// there forever, and that node would go untraced: with a class above every workload
// (whose default priority is 0) the scheduler evicts a lower-priority pod to make room.
// Both stay far below system-node-critical (2000001000, reserved with everything above
// 1e9 for the cluster itself), so kube-proxy, CNI and CSI pods always win.
import { PriorityClass } from 'kubernetes-models/scheduling.k8s.io/v1/PriorityClass';
import { labels, NAMES } from './names.js';

/**
 * The collector is one above the agent: an agent without its node's collector has nowhere
 * to send (the Service is node-local), while a collector without an agent still serves
 * the SDK-instrumented pods of its node.
 */
export const AGENT_PRIORITY = 1_000_000;
export const COLLECTOR_PRIORITY = 1_000_001;

export function priorityClasses(): PriorityClass[] {
  return [
    new PriorityClass({
      metadata: { name: NAMES.agentPriority, labels: labels('scheduling') },
      value: AGENT_PRIORITY,
      globalDefault: false,
      preemptionPolicy: 'PreemptLowerPriority',
      description: 'Osprey eBPF agent: one per node, placed before ordinary workloads so that every node is traced',
    }),
    new PriorityClass({
      metadata: { name: NAMES.collectorPriority, labels: labels('scheduling') },
      value: COLLECTOR_PRIORITY,
      globalDefault: false,
      preemptionPolicy: 'PreemptLowerPriority',
      description: "Osprey's node-local OpenTelemetry Collector: receives the agent's OTLP on the same node",
    }),
  ];
}
