// Tag names as the tags and tag-values APIs take them (`resource.service.name`, `span.x`,
// `.x`, `span."a b"`, an intrinsic): one reading for the store and the server.

/** the intrinsic tag names the tags API lists */
export const INTRINSIC_TAGS: readonly string[] = [
  'duration',
  'event:name',
  'event:timeSinceStart',
  'kind',
  'link:spanID',
  'link:traceID',
  'name',
  'rootName',
  'rootServiceName',
  'span:duration',
  'span:id',
  'span:kind',
  'span:name',
  'span:parentID',
  'span:status',
  'span:statusMessage',
  'status',
  'statusMessage',
  'trace:duration',
  'trace:id',
  'trace:rootName',
  'trace:rootService',
  'traceDuration',
];

export type ParsedTag =
  | { kind: 'intrinsic'; name: 'status' | 'kind' | 'name' | 'statusMessage' | 'rootName' | 'rootServiceName' | 'eventName' | 'other' }
  | { kind: 'attribute'; scope: 'span' | 'resource' | 'any' | 'event' | 'link'; name: string };

const INTRINSIC_TAG_NAMES: Readonly<Record<string, ParsedTag & { kind: 'intrinsic' }>> = {
  name: { kind: 'intrinsic', name: 'name' },
  'span:name': { kind: 'intrinsic', name: 'name' },
  status: { kind: 'intrinsic', name: 'status' },
  'span:status': { kind: 'intrinsic', name: 'status' },
  kind: { kind: 'intrinsic', name: 'kind' },
  'span:kind': { kind: 'intrinsic', name: 'kind' },
  statusMessage: { kind: 'intrinsic', name: 'statusMessage' },
  'span:statusMessage': { kind: 'intrinsic', name: 'statusMessage' },
  rootName: { kind: 'intrinsic', name: 'rootName' },
  'trace:rootName': { kind: 'intrinsic', name: 'rootName' },
  rootServiceName: { kind: 'intrinsic', name: 'rootServiceName' },
  'trace:rootService': { kind: 'intrinsic', name: 'rootServiceName' },
  'event:name': { kind: 'intrinsic', name: 'eventName' },
};

/** `resource.service.name`, `span.x`, `.x`, `span."a b"`, an intrinsic, or a bare attribute name (either scope). */
export function parseTagName(raw: string): ParsedTag | undefined {
  const name = raw.trim();
  if (name === '') return undefined;
  const intrinsic = INTRINSIC_TAG_NAMES[name];
  if (intrinsic) return intrinsic;
  if (INTRINSIC_TAGS.includes(name)) return { kind: 'intrinsic', name: 'other' };
  let scope: 'span' | 'resource' | 'any' | 'event' | 'link' = 'any';
  let key = name;
  if (name.startsWith('span.')) {
    scope = 'span';
    key = name.slice(5);
  } else if (name.startsWith('event.') || name.startsWith('link.')) {
    scope = name.startsWith('event.') ? 'event' : 'link';
    key = name.slice(scope.length + 1);
  } else if (name.startsWith('resource.')) {
    scope = 'resource';
    key = name.slice(9);
  } else if (name.startsWith('.')) {
    key = name.slice(1);
  }
  if (key.length >= 2 && key.startsWith('"') && key.endsWith('"')) key = key.slice(1, -1).replace(/\\(["\\])/g, '$1');
  if (key === '') return undefined;
  return { kind: 'attribute', scope, name: key };
}
