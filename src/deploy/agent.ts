// The agent DaemonSet: one `osprey up --no-store --export …` per node.
//
// Privileges, and why each is there (docs/kubernetes.md says the same for operators):
// - hostPID: the kernel reports host pids; with the host's pid namespace the container's
//   own /proc is the host's process list, so /proc/<pid>/{environ,exe,cgroup,maps} of every
//   traced process resolve, and the agent leaves itself out by its own (host) pid. That is
//   also why there is no host /proc mount: with hostPID the runtime's procfs already is the
//   host's view, and a second mount of it would add nothing but a writable-looking path.
// - no hostNetwork: syscall tracepoints see the sockets of every network namespace from
//   anywhere, so the agent needs no node network. On the pod network its port 7070 stays off
//   the node's address space and Service names resolve without dnsPolicy tricks.
// - capabilities instead of privileged: BPF (load programs, create maps) and PERFMON
//   (attach to tracepoints, read kernel memory from BPF) are what the kernel asks of a
//   tracer since 5.8; SYS_RESOURCE lifts RLIMIT_MEMLOCK, which kernels before 5.11 charge
//   BPF maps to. SYS_PTRACE and DAC_READ_SEARCH are for naming processes of other users:
//   /proc/<pid>/exe (the executable's name, and the binary the runtime detection reads)
//   passes a ptrace access check, and /proc/<pid>/environ (OTEL_SERVICE_NAME) is mode 0400
//   of its owner, which root without DAC_OVERRIDE opens only with DAC_READ_SEARCH (a
//   read-only bypass, narrower than DAC_OVERRIDE). test/deploy-caps.test.ts runs the
//   agent's checks with exactly this set, and reads another uid's process without each.
// - seccomp Unconfined: RuntimeDefault profiles allow bpf(2) and perf_event_open(2) only
//   with CAP_SYS_ADMIN in many runtime versions (newer ones also with BPF/PERFMON); the
//   capability set above is the actual limit.
// - mounts: /sys/kernel/tracing (tracepoint ids; a container's own sysfs has only the
//   empty mount point) and /sys/fs/cgroup (the host's hierarchy for cgroup ids, container
//   ids and the cgroup v2 check), both read-only. /sys/kernel/btf is in the container's
//   sysfs already (it is not namespaced).
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { AGENT_PORT, collectorService, labels, NAMES } from './names.js';
import type { DeployOptions } from './options.js';

export const AGENT_CAPABILITIES = ['BPF', 'PERFMON', 'SYS_RESOURCE', 'SYS_PTRACE', 'DAC_READ_SEARCH'];

/** the collector's OTLP/HTTP port on its node-local Service */
export const COLLECTOR_OTLP_HTTP = 4318;

/** `osprey up` as ARCHITECTURE.md pins it for the DaemonSet: export-only, listening on the pod IP */
export function agentArgs(o: DeployOptions): string[] {
  return ['up', '--no-store', '--export', `http://${collectorService(o.namespace)}:${COLLECTOR_OTLP_HTTP}`, '--listen', `0.0.0.0:${AGENT_PORT}`];
}

export function agentDaemonSet(o: DeployOptions): DaemonSet {
  const selector = { 'app.kubernetes.io/name': 'osprey', 'app.kubernetes.io/component': 'agent' };
  const hostDir = (name: string, path: string) => ({ name, hostPath: { path, type: 'Directory' as const } });
  return new DaemonSet({
    metadata: { name: NAMES.agent, namespace: o.namespace, labels: labels('agent') },
    spec: {
      selector: { matchLabels: selector },
      // a node is untraced while its agent restarts: roll a tenth of the nodes at a time
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '10%' } },
      template: {
        metadata: { labels: labels('agent') },
        spec: {
          serviceAccountName: NAMES.agent,
          priorityClassName: NAMES.agentPriority,
          hostPID: true,
          // every node, tainted ones (control plane, dedicated pools) included
          tolerations: [{ operator: 'Exists' }],
          // SIGTERM flushes the export queue; give it time
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: 'agent',
              image: o.image,
              imagePullPolicy: 'IfNotPresent',
              args: agentArgs(o),
              env: [
                { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
                // V8 sizes its heap from the machine, not the cgroup: keep it under the limit
                { name: 'NODE_OPTIONS', value: '--max-old-space-size=320' },
              ],
              ports: [{ name: 'http', containerPort: AGENT_PORT, protocol: 'TCP' }],
              resources: {
                requests: { cpu: '200m', memory: '256Mi' },
                limits: { cpu: '1', memory: '512Mi' },
              },
              // the listener opens only once the probes are attached: loading and attaching
              // may take a while on a busy node, the startup probe allows a minute
              startupProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 2, failureThreshold: 30 },
              readinessProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 10, timeoutSeconds: 2 },
              livenessProbe: { httpGet: { path: '/api/echo', port: 'http' }, periodSeconds: 20, timeoutSeconds: 5, failureThreshold: 3 },
              securityContext: {
                runAsUser: 0,
                runAsNonRoot: false,
                privileged: false,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'], add: AGENT_CAPABILITIES },
                seccompProfile: { type: 'Unconfined' },
              },
              volumeMounts: [
                { name: 'tracefs', mountPath: '/sys/kernel/tracing', readOnly: true },
                { name: 'cgroup', mountPath: '/sys/fs/cgroup', readOnly: true },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [hostDir('tracefs', '/sys/kernel/tracing'), hostDir('cgroup', '/sys/fs/cgroup'), { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }],
        },
      },
    },
  });
}
