// The OpenTelemetry Operator's CRD of OpenTelemetryCollector, for validating the generated
// CR without a cluster. Source: the operator's Go module, github.com/open-telemetry/
// opentelemetry-operator at OPERATOR_VERSION, file config/crd/bases/
// opentelemetry.io_opentelemetrycollectors.yaml (the CRD the operator generates from its
// Go types with controller-gen and installs). `go mod download` fetches the module from the
// Go module proxy, checksum-verified, into Go's module cache: a second run downloads
// nothing, and nothing of it is copied into this repository.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { OPERATOR_VERSION } from '../src/deploy/index.js';

export const OPERATOR_MODULE = 'github.com/open-telemetry/opentelemetry-operator';

export interface CrdVersion {
  name: string;
  served: boolean;
  storage: boolean;
  schema: { openAPIV3Schema: Record<string, unknown> };
}

export interface Crd {
  spec: { group: string; names: { kind: string }; versions: CrdVersion[] };
}

export function operatorCrd(): Crd {
  const out = execFileSync('go', ['mod', 'download', '-json', `${OPERATOR_MODULE}@v${OPERATOR_VERSION}`], {
    // outside any module; the machine's Go as it is (no toolchain switch for a download)
    cwd: tmpdir(),
    env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' },
    encoding: 'utf8',
    timeout: 180_000,
  });
  const info = JSON.parse(out) as { Dir?: string; Error?: string };
  if (!info.Dir) throw new Error(`go mod download ${OPERATOR_MODULE}@v${OPERATOR_VERSION}: ${info.Error ?? out}`);
  return parse(readFileSync(join(info.Dir, 'config/crd/bases/opentelemetry.io_opentelemetrycollectors.yaml'), 'utf8')) as Crd;
}
