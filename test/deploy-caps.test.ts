// The agent DaemonSet's privileges, tried on this machine's real kernel: `osprey doctor`
// run as root with exactly the capability set of the generated manifest (and no_new_privs,
// as allowPrivilegeEscalation: false sets it) loads and attaches the real programs; with no
// capabilities it fails with a fix and exit 1; and a process of another uid can be named
// only with SYS_PTRACE (its exe) and DAC_READ_SEARCH (its environ). setpriv (util-linux)
// drops the capabilities for real: the bounding set limits what root's exec gets, as a
// container runtime does.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { agentDaemonSet } from '../src/deploy/agent.js';
import { resolveOptions } from '../src/deploy/options.js';
import { doctorChecks, type Check } from '../src/kernel/doctor.js';
import { spawnChild } from '../src/proc/index.js';
import { OSPREY, run, waitFor } from './helpers.js';

/** the capabilities the generated DaemonSet adds, read from the object itself */
function manifestCaps(): string[] {
  const ds = agentDaemonSet(resolveOptions());
  const add = ds.spec?.template.spec?.containers[0]?.securityContext?.capabilities?.add;
  assert.ok(add?.length, 'the agent container adds capabilities');
  return add;
}

/** setpriv arguments: root keeps only `caps` (no_new_privs set), as the pod's container does */
function dropTo(caps: string[]): string[] {
  const list = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
  return ['--no-new-privs', '--bounding-set', list, '--inh-caps', '-all'];
}

function parseDoctor(stdout: string): { ok: boolean; checks: Check[] } {
  return JSON.parse(stdout) as { ok: boolean; checks: Check[] };
}

const byId = (checks: Check[], id: string) => checks.find((c) => c.id === id);

test('doctor with exactly the DaemonSet capabilities: every required check passes and the real programs load and attach', async () => {
  const caps = manifestCaps();
  assert.ok(!caps.includes('SYS_ADMIN'), 'the agent does not ask for SYS_ADMIN');
  const r = await run('setpriv', [...dropTo(caps), OSPREY, 'doctor', '--json'], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const { ok, checks } = parseDoctor(r.stdout);
  assert.equal(ok, true);
  assert.equal(byId(checks, 'capabilities')?.status, 'pass');
  assert.match(byId(checks, 'capabilities')!.detail, /PERFMON BPF/);
  assert.doesNotMatch(byId(checks, 'capabilities')!.detail, /SYS_ADMIN/);
  assert.equal(byId(checks, 'process-metadata')?.status, 'pass');
  const load = byId(checks, 'load');
  assert.equal(load?.status, 'pass', load?.detail);
  assert.match(load?.detail ?? '', /loaded and attached (\d+)\/\1 programs/);
});

test('doctor without capabilities: capabilities FAIL with the fix, the load is skipped, exit 1 (table and JSON)', async () => {
  const table = await run('setpriv', [...dropTo([]), OSPREY, 'doctor'], { timeoutMs: 60_000 });
  assert.equal(table.code, 1, table.stdout + table.stderr);
  assert.match(table.stdout, /^FAIL {2}capabilities +effective: none; loading eBPF needs BPF and PERFMON/m);
  assert.match(table.stdout, /^ +fix: .*capabilities\.add \[BPF, PERFMON/m);
  assert.match(table.stdout, /^skip {2}load +a check above failed$/m);
  assert.match(table.stdout, /1 check failed: this node cannot run the agent until fixed\./);

  const json = await run('setpriv', [...dropTo([]), OSPREY, 'doctor', '--json'], { timeoutMs: 60_000 });
  assert.equal(json.code, 1);
  const { ok, checks } = parseDoctor(json.stdout);
  assert.equal(ok, false);
  assert.deepEqual(
    checks.filter((c) => c.status === 'fail').map((c) => c.id),
    ['capabilities'],
  );
  assert.equal(byId(checks, 'process-metadata')?.status, 'warn');
});

test('doctor check logic with a tracefs mount point that is not mounted: tracefs FAIL with the mount fix, tracepoints skipped', () => {
  const checks = doctorChecks({ tracefsDirs: ['/nonexistent/osprey-doctor/tracing'], load: false });
  const t = byId(checks, 'tracefs')!;
  assert.equal(t.status, 'fail');
  assert.match(t.detail, /not mounted at \/nonexistent\/osprey-doctor\/tracing \(the kernel has tracefs: it can be mounted\)/);
  assert.match(t.fix!, /mount -t tracefs nodev \/sys\/kernel\/tracing/);
  assert.equal(byId(checks, 'syscall-tracepoints')?.status, 'skip');
  assert.equal(byId(checks, 'load')?.status, 'skip');
  // and on the real paths the same logic passes
  const real = doctorChecks({ load: false });
  assert.equal(byId(real, 'tracefs')?.status, 'pass');
  assert.equal(byId(real, 'syscall-tracepoints')?.status, 'pass');
});

test('doctor check logic: kernel too old, BTF missing, no cgroup v2, no uprobes: each reported with its fix', () => {
  const checks = doctorChecks({
    release: '5.4.0-150-generic',
    btf: '/nonexistent/vmlinux',
    cgroupRoot: '/nonexistent/cgroup',
    procMounts: '/nonexistent/mounts',
    eventSources: '/nonexistent/devices',
    load: false,
  });
  assert.equal(byId(checks, 'kernel')?.status, 'fail');
  assert.match(byId(checks, 'kernel')!.fix!, /5\.15/);
  assert.equal(byId(checks, 'btf')?.status, 'fail');
  assert.match(byId(checks, 'btf')!.fix!, /CONFIG_DEBUG_INFO_BTF/);
  assert.equal(byId(checks, 'cgroup-v2')?.status, 'warn');
  assert.match(byId(checks, 'cgroup-v2')!.detail, /cgroup v1 only/);
  assert.equal(byId(checks, 'uprobes')?.status, 'warn');
  assert.match(byId(checks, 'uprobes')!.fix!, /CONFIG_UPROBE_EVENTS/);
  assert.equal(byId(checks, 'kprobes')?.status, 'pass');
});

test('naming a process of another uid: exe needs SYS_PTRACE, environ needs DAC_READ_SEARCH; the DaemonSet set reads both', async () => {
  const target = await spawnChild('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', 'sleep', '60'], {
    env: { OTEL_SERVICE_NAME: 'caps-probe' },
  });
  try {
    // setpriv execs sleep in place: same pid, once it runs as 65534
    await waitFor('the target to run as uid 65534', () => /^Uid:\s+65534/m.test(readFileSync(`/proc/${target.pid}/status`, 'utf8')), 5000);
    const reader = [
      'const fs = require("fs"); const pid = process.argv[1]; const out = {};',
      'try { out.environ = fs.readFileSync(`/proc/${pid}/environ`, "latin1").includes("OTEL_SERVICE_NAME=caps-probe") ? "ok" : "other"; } catch (e) { out.environ = e.code; }',
      'try { out.exe = fs.readlinkSync(`/proc/${pid}/exe`); } catch (e) { out.exe = e.code; }',
      'console.log(JSON.stringify(out));',
    ].join('\n');
    const read = async (caps: string[]) => {
      const r = await run('setpriv', [...dropTo(caps), process.execPath, '-e', reader, String(target.pid)]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { environ: string; exe: string };
    };
    const all = manifestCaps();
    const full = await read(all);
    assert.equal(full.environ, 'ok');
    assert.match(full.exe, /\/sleep$/);

    const noPtrace = await read(all.filter((c) => c !== 'SYS_PTRACE'));
    assert.equal(noPtrace.exe, 'EACCES');
    assert.equal(noPtrace.environ, 'ok');

    const noDac = await read(all.filter((c) => c !== 'DAC_READ_SEARCH'));
    assert.equal(noDac.environ, 'EACCES');
    assert.match(noDac.exe, /\/sleep$/);
  } finally {
    await target.stop();
  }
});
