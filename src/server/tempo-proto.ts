// Trace by id in protobuf, as Grafana's Tempo data source asks for it (Accept:
// application/protobuf): `/api/v2/traces/<id>` answers tempopb.TraceByIDResponse, `/api/traces/<id>`
// answers tempopb.Trace. The messages come from the .proto files in proto/tempopb (Tempo's field
// numbers), loaded by protobufjs reflection when the first protobuf trace is asked for: the JSON
// paths never pay for it.
import { dirname, join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type { AttrValue, Attributes, Span, SpanKind, SpanStatus } from '../model/index.js';

/** the repo's proto/ folder: src/server → ../../proto, dist/src/server → ../../../proto */
export function protoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'proto');
    if (existsSync(join(p, 'tempopb', 'tempo.proto'))) return p;
    dir = resolve(dir, '..');
  }
  throw new Error('proto/tempopb/tempo.proto not found beside the osprey sources: the installation is incomplete');
}

/** protobufjs root of the given files under proto/ (imports resolve inside proto/) */
export function loadProtos(files: string[]): protobuf.Root {
  const base = protoDir();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(base, target);
  root.loadSync(files, { keepCase: false });
  root.resolveAll();
  return root;
}

interface TempoTypes {
  trace: protobuf.Type;
  traceByIdResponse: protobuf.Type;
}
let types: TempoTypes | undefined;
function tempoTypes(): TempoTypes {
  if (!types) {
    const root = loadProtos(['tempopb/tempo.proto']);
    types = { trace: root.lookupType('tempopb.Trace'), traceByIdResponse: root.lookupType('tempopb.TraceByIDResponse') };
  }
  return types;
}

const KIND: Readonly<Record<SpanKind, number>> = { unspecified: 0, internal: 1, server: 2, client: 3, producer: 4, consumer: 5 };
const STATUS: Readonly<Record<SpanStatus, number>> = { unset: 0, ok: 1, error: 2 };

function anyValue(v: AttrValue): Record<string, unknown> {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  return Number.isSafeInteger(v) ? { intValue: v } : { doubleValue: v };
}

function keyValues(a: Attributes): { key: string; value: Record<string, unknown> }[] {
  const out = [];
  for (const key in a) out.push({ key, value: anyValue(a[key]!) });
  return out;
}

/** spans grouped by resource (one ResourceSpans each), as plain objects protobufjs takes */
function resourceSpans(spans: readonly Span[]): unknown[] {
  const groups = new Map<Attributes, Span[]>();
  const byText = new Map<string, Attributes>();
  for (const s of spans) {
    // spans of one process share their resource object; equal resources from elsewhere merge too
    let key = groups.has(s.resource) ? s.resource : undefined;
    if (!key) {
      const text = JSON.stringify(s.resource);
      key = byText.get(text) ?? s.resource;
      byText.set(text, key);
    }
    const g = groups.get(key);
    if (g) g.push(s);
    else groups.set(key, [s]);
  }
  return [...groups].map(([resource, group]) => ({
    resource: { attributes: keyValues(resource) },
    scopeSpans: [
      {
        scope: { name: 'osprey', version: '0.1.0' },
        spans: group.map((s) => ({
          traceId: Buffer.from(s.traceId, 'hex'),
          spanId: Buffer.from(s.spanId, 'hex'),
          parentSpanId: s.hasParent() ? Buffer.from(s.parentSpanId, 'hex') : Buffer.alloc(0),
          name: s.name,
          kind: KIND[s.kind],
          startTimeUnixNano: s.startTimeUnixNano.toString(),
          endTimeUnixNano: (s.startTimeUnixNano + BigInt(s.durationNano)).toString(),
          attributes: keyValues(s.attributes),
          ...(s.events !== undefined
            ? { events: s.events.map((e) => ({ timeUnixNano: e.timeUnixNano.toString(), name: e.name, attributes: keyValues(e.attributes) })) }
            : {}),
          ...(s.droppedEvents ? { droppedEventsCount: s.droppedEvents } : {}),
          ...(s.links !== undefined
            ? { links: s.links.map((l) => ({ traceId: Buffer.from(l.traceId, 'hex'), spanId: Buffer.from(l.spanId, 'hex'), attributes: keyValues(l.attributes) })) }
            : {}),
          ...(s.droppedLinks ? { droppedLinksCount: s.droppedLinks } : {}),
          status: { code: STATUS[s.status], message: s.statusMessage ?? '' },
        })),
      },
    ],
  }));
}

/** tempopb.Trace (what `/api/traces/<id>` answers in protobuf) */
export function encodeTrace(spans: readonly Span[]): Uint8Array {
  const t = tempoTypes().trace;
  return t.encode(t.fromObject({ resourceSpans: resourceSpans(spans) })).finish();
}

/** tempopb.TraceByIDResponse (what `/api/v2/traces/<id>` answers in protobuf), status COMPLETE */
export function encodeTraceByIdResponse(spans: readonly Span[]): Uint8Array {
  const t = tempoTypes().traceByIdResponse;
  return t.encode(t.fromObject({ trace: { resourceSpans: resourceSpans(spans) }, status: 0 })).finish();
}

/**
 * Does the client ask for protobuf? Grafana sends `Accept: application/protobuf`; Tempo also
 * takes `application/x-protobuf`. JSON stays the default (a browser, curl).
 */
export function wantsProtobuf(accept: string | undefined): boolean {
  if (!accept) return false;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.trim().toLowerCase().split(';');
    if (type !== 'application/protobuf' && type !== 'application/x-protobuf') continue;
    // q=0 means "not this one"
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    if (q === undefined || Number(q.slice(2)) > 0) return true;
  }
  return false;
}
