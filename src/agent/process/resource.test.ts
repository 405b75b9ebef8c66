// Resource detection: service names from environment and command lines,
// container ids from cgroup paths, and a real child process read from /proc.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { containerIdFromCgroup, parseEnviron, ProcessTable, serviceFromCommand } from './resource.js';

describe('resource detection', () => {
  it('service name from the command line: interpreters name their script', () => {
    assert.equal(serviceFromCommand('/usr/bin/python3.11', ['python3', 'app.py']), 'app');
    assert.equal(serviceFromCommand('/usr/bin/python3', ['python3', '-u', '/srv/api/server.py', '--port', '80']), 'server');
    assert.equal(serviceFromCommand('/usr/bin/python3', ['python3', '-m', 'http.server', '8000']), 'http');
    assert.equal(serviceFromCommand('/usr/bin/node', ['node', '--enable-source-maps', 'dist/main.mjs']), 'main');
    assert.equal(serviceFromCommand('/usr/bin/node', ['node', '-e', 'code']), 'node');
    assert.equal(serviceFromCommand('/usr/lib/jvm/bin/java', ['java', '-cp', 'app.jar:lib/*', 'com.acme.OrderService']), 'OrderService');
    assert.equal(serviceFromCommand('/usr/lib/jvm/bin/java', ['java', '-jar', '/opt/billing.jar']), 'billing');
    assert.equal(serviceFromCommand('/usr/sbin/nginx', ['nginx: worker process']), 'nginx');
    assert.equal(serviceFromCommand('/opt/bin/my-operator', ['/opt/bin/my-operator', '--leader-elect']), 'my-operator');
  });

  it('OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES from a NUL-separated environment', () => {
    const env = Buffer.from('PATH=/bin\0OTEL_SERVICE_NAME=checkout\0OTEL_RESOURCE_ATTRIBUTES=deployment.environment=prod,team=pay%20ments\0junk\0');
    const r = parseEnviron(env);
    assert.equal(r.serviceName, 'checkout');
    assert.deepEqual(r.resourceAttrs, { 'deployment.environment': 'prod', team: 'pay ments' });
    assert.equal(parseEnviron(Buffer.from('\0\0nginx: master process\0')).serviceName, undefined);
  });

  it('container id from cgroup v1 and v2 paths', () => {
    const id = 'a'.repeat(12) + 'b'.repeat(52);
    assert.equal(containerIdFromCgroup(`0::/system.slice/docker-${id}.scope\n`), id);
    assert.equal(containerIdFromCgroup(`0::/kubepods/burstable/pod1234/${id}\n`), id);
    assert.equal(containerIdFromCgroup(`12:cpu:/kubepods.slice/kubepods-pod1.slice/cri-containerd-${id}.scope\n`), id);
    assert.equal(containerIdFromCgroup('0::/user.slice/session-1.scope\n'), undefined);
  });

  it('a real process: pid, executable, service from its environment', async () => {
    const child = spawn('sleep', ['5'], { env: { ...process.env, OTEL_SERVICE_NAME: 'napper' } });
    try {
      await new Promise((r) => setTimeout(r, 100));
      const t = new ProcessTable();
      const p = t.get(child.pid!, 'sleep');
      assert.equal(p.serviceName, 'napper');
      assert.equal(p.resource['process.pid'], child.pid);
      assert.equal(p.resource['process.executable.name'], 'sleep');
      assert.equal(typeof p.resource['host.name'], 'string');
      child.kill();
      await new Promise((r) => child.once('exit', r));
      assert.equal(t.sweep(), 1, 'exited processes are swept');
      assert.equal(t.size, 0);
      // gone from /proc: falls back to the kernel's comm
      assert.equal(t.get(child.pid!, 'sleep').serviceName, 'sleep');
    } finally {
      child.kill();
    }
  });
});
