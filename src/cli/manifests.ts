// `osprey manifests`: the Kubernetes objects of the cluster deployment, as YAML.
// the typed Kubernetes models are loaded when the command runs, not by every osprey command
import { DEFAULTS, DeployOptionError, OPERATOR_VERSION, type DeployOptions } from '../deploy/options.js';
import { flushStdout, UsageError, type Command } from './cli.js';

/** flag name -> option, in help order */
const FLAGS: [string, keyof DeployOptions, string][] = [
  ['namespace', 'namespace', 'NS'],
  ['image', 'image', 'IMAGE'],
  ['collector-image', 'collectorImage', 'IMAGE'],
  ['tempo-otlp', 'tempoOtlp', 'HOST:PORT'],
  ['tempo-query', 'tempoQuery', 'URL'],
  ['mimir-write', 'mimirWrite', 'URL'],
  ['mimir-query', 'mimirQuery', 'URL'],
  ['loki-otlp', 'lokiOtlp', 'URL'],
  ['loki-query', 'lokiQuery', 'URL'],
  ['tenant', 'tenant', 'ID'],
];

const WHAT: Record<keyof DeployOptions, string> = {
  namespace: 'namespace of the agent and collector',
  image: 'Osprey agent image, built from this repository',
  collectorImage: 'collector image (contrib or k8s distribution)',
  tempoOtlp: "Tempo distributor's OTLP/gRPC receiver",
  tempoQuery: "Tempo query-frontend, for Grafana's datasource",
  mimirWrite: 'Mimir remote-write URL (collector, Tempo metrics-generator)',
  mimirQuery: 'Mimir PromQL base URL, for Grafana',
  lokiOtlp: "Loki OTLP base URL (the collector appends /v1/logs)",
  lokiQuery: 'Loki base URL, for Grafana',
  tenant: 'X-Scope-OrgID sent to Tempo, Mimir and Loki',
};

function helpLines(): string {
  const lines = [
    '      --out DIR             write one file per object into DIR (NN-kind-name.yaml, in apply',
    '                            order) instead of one multi-document stream on stdout',
  ];
  for (const [flag, key, arg] of FLAGS) {
    const left = `      --${flag} ${arg}`;
    if (left.length > 26) lines.push(left, `${''.padEnd(28)}${WHAT[key]}`);
    else lines.push(`${left.padEnd(28)}${WHAT[key]}`);
    lines.push(`${''.padEnd(28)}(default ${DEFAULTS[key]})`);
  }
  return lines.join('\n');
}

export const manifestsCommand: Command = {
  name: 'manifests',
  summary:
    'Print the Kubernetes objects of the cluster deployment: namespace, PriorityClasses, RBAC, the\n' +
    `agent DaemonSet, a node-local OpenTelemetryCollector (OpenTelemetry Operator ${OPERATOR_VERSION}, CRD\n` +
    "opentelemetry.io/v1beta1), Tempo's metrics-generator settings, Grafana datasources and a RED\n" +
    'dashboard. Install: osprey manifests | kubectl apply -f -   (docs/kubernetes.md)',
  usage: 'osprey manifests [--namespace NS] [--out DIR] [--image IMAGE] [endpoint options]',
  help: helpLines(),
  options: Object.fromEntries(['out', ...FLAGS.map(([flag]) => flag)].map((flag): [string, { type: 'string' }] => [flag, { type: 'string' }])),
  async run({ values }) {
    const given: Partial<DeployOptions> = {};
    for (const [flag, key] of FLAGS) {
      const v = values[flag] as string | undefined;
      if (v !== undefined) given[key] = v;
    }
    const { manifests, toYaml, writeManifests } = await import('../deploy/manifests.js');
    let objs;
    try {
      objs = manifests(given);
    } catch (err) {
      if (err instanceof DeployOptionError) throw new UsageError(err.message);
      throw err;
    }
    const out = values.out as string | undefined;
    if (out === undefined) {
      process.stdout.write(toYaml(objs));
      await flushStdout();
      return 0;
    }
    if (out === '') throw new UsageError('--out needs a directory');
    let paths: string[];
    try {
      paths = writeManifests(out, objs);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw Object.assign(new Error(`cannot write the manifests into ${out}: ${e.code ?? ''} ${e.message}`.trim()), {
        hint: 'pass --out with a directory you can write to, or leave --out off to print them',
      });
    }
    process.stderr.write(`osprey: wrote ${paths.length} objects into ${out}; install them with: kubectl apply -f ${out}\n`);
    return 0;
  },
};
