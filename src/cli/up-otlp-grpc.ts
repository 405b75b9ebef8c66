// `osprey up --otlp-grpc HOST:PORT|off`: the OTLP/gRPC receiver (src/server/otlp-grpc.ts) of `osprey up`.
//
// Default: on at 127.0.0.1:4317 when osprey keeps spans, because that is where an SDK or a
// Collector sends OTLP when nobody configured an endpoint, so an instrumented app on this machine
// reaches osprey with no setting at all. Off when osprey exports (--export, or the
// OTEL_EXPORTER_OTLP_* environment) or keeps nothing (--no-store): there an OpenTelemetry Collector
// is the node's OTLP entry point and owns 4317, and osprey taking it first would stop a collector
// started after it.
// When the default port is taken (a local collector runs), osprey warns and runs without it; an
// address given explicitly must work or `osprey up` stops with the reason.
import type { OtlpReceiver } from '../server/otlp-receiver.js';
import { OTLP_GRPC_DEFAULT, OtlpGrpcError, OtlpGrpcReceiver } from '../server/otlp-grpc.js';
import { UsageError } from './cli.js';

export const OTLP_GRPC_HELP = [
  '      --otlp-grpc HOST:PORT|off  OTLP/gRPC receiver (TraceService/Export; metrics and logs are answered',
  '                            as not kept). Default on at 127.0.0.1:4317, the endpoint SDKs and Collectors',
  '                            use when none is set, so local apps need no configuration; a taken default',
  '                            port is a warning. Default off when exporting (--export) or with --no-store:',
  '                            the collector owns 4317 then. Use 0.0.0.0:4317 to accept other machines',
  '                            (no TLS, no auth)',
];

export interface OtlpGrpcSetting {
  host: string;
  port: number;
  /** the user named the address (a failure to listen stops osprey up) */
  explicit: boolean;
}

/**
 * the flag's value, checked before anything starts; undefined: off. collectorOwns4317: osprey
 * exports or keeps nothing (the default is off then).
 */
export function parseOtlpGrpcFlag(v: string | undefined, collectorOwns4317: boolean, parseListen: (v: string) => { host: string; port: number }): OtlpGrpcSetting | undefined {
  if (v === undefined) return collectorOwns4317 ? undefined : { ...OTLP_GRPC_DEFAULT, explicit: false };
  if (v === 'off') return undefined;
  if (v === 'on') return { ...OTLP_GRPC_DEFAULT, explicit: true };
  try {
    return { ...parseListen(v), explicit: true };
  } catch {
    throw new UsageError(`--otlp-grpc must be HOST:PORT such as 127.0.0.1:4317, or off; got "${v}"`);
  }
}

/** starts the receiver; a taken default port is a warning (undefined), any other failure an error with a hint */
export async function startOtlpGrpcFor(setting: OtlpGrpcSetting | undefined, receiver: OtlpReceiver, say: (s: string) => void): Promise<OtlpGrpcReceiver | undefined> {
  if (!setting) {
    say('OTLP/gRPC receiver: off (--otlp-grpc HOST:PORT to accept OTLP over gRPC)');
    return undefined;
  }
  try {
    const grpc = await OtlpGrpcReceiver.start({ receiver, host: setting.host, port: setting.port });
    say(`OTLP/gRPC receiver: ${grpc.address} (opentelemetry.proto.collector.trace.v1.TraceService/Export; OTEL_EXPORTER_OTLP_ENDPOINT=http://${grpc.address})`);
    return grpc;
  } catch (err) {
    if (err instanceof OtlpGrpcError && !setting.explicit && err.code === 'EADDRINUSE') {
      say(`warning: OTLP/gRPC receiver not started: ${err.message} (${err.hint})`);
      return undefined;
    }
    // without the errno code: up.ts reads EADDRINUSE as the HTTP listener's
    if (err instanceof OtlpGrpcError) throw Object.assign(new Error(err.message, { cause: err }), { hint: err.hint });
    throw err;
  }
}

/** the receiver's part of osprey status: where it listens, and its counters beside the others */
export function withOtlpGrpc(report: Record<string, unknown>, grpc: OtlpGrpcReceiver | undefined): Record<string, unknown> {
  const counters = { ...(report.counters as Record<string, number> | undefined), ...grpc?.status() };
  return { ...report, otlpGrpc: grpc ? { listening: grpc.address } : { listening: false }, counters };
}
