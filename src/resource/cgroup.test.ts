// Container and pod identity from /proc/<pid>/cgroup: the path forms real nodes produce
// (kubelet with the systemd or the cgroupfs driver; containerd, CRI-O, Docker; v2, v1, hybrid).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { containerIdFromCgroup, identityFromCgroup } from './cgroup.js';

const CID = '3f1a9c0be2d54c7f8e6b1a2d3c4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f67';
const UID = '6b0e9d3a-2f1c-4e8b-9a7d-5c4b3a2f1e0d';
const UID_ = UID.replace(/-/g, '_');

describe('cgroup identity', () => {
  it('systemd driver, cgroup v2: containerd, CRI-O, docker; every QoS class', () => {
    assert.deepEqual(identityFromCgroup(`0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${CID}.scope\n`), {
      containerId: CID,
      podUid: UID,
      runtime: 'containerd',
    });
    assert.deepEqual(identityFromCgroup(`0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-${CID}.scope\n`), {
      containerId: CID,
      podUid: UID,
      runtime: 'cri-o',
    });
    // Guaranteed pods have no QoS class slice
    assert.deepEqual(identityFromCgroup(`0::/kubepods.slice/kubepods-pod${UID_}.slice/docker-${CID}.scope\n`), { containerId: CID, podUid: UID, runtime: 'docker' });
    // kind and some distributions run the kubelet's pods below kubelet.slice
    assert.deepEqual(
      identityFromCgroup(`0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${UID_}.slice/cri-containerd-${CID}.scope\n`),
      { containerId: CID, podUid: UID, runtime: 'containerd' },
    );
  });

  it('cgroupfs driver (k3s, GKE): /kubepods/<qos>/pod<uid>/<id>', () => {
    assert.deepEqual(identityFromCgroup(`0::/kubepods/burstable/pod${UID}/${CID}\n`), { containerId: CID, podUid: UID, runtime: '' });
    assert.deepEqual(identityFromCgroup(`0::/kubepods/pod${UID}/${CID}\n`), { containerId: CID, podUid: UID, runtime: '' });
    assert.equal(containerIdFromCgroup(`0::/kubepods/besteffort/pod${UID}/${CID}`), CID);
  });

  it('cgroup v1 and hybrid hosts: a controller line names the container when the v2 line does not', () => {
    const v1 = [
      `12:pids:/kubepods/burstable/pod${UID}/${CID}`,
      `11:memory:/kubepods/burstable/pod${UID}/${CID}`,
      `1:name=systemd:/kubepods/burstable/pod${UID}/${CID}`,
      '0::/',
      '',
    ].join('\n');
    assert.deepEqual(identityFromCgroup(v1), { containerId: CID, podUid: UID, runtime: '' });
    // containerd's view in the name=systemd hierarchy on systemd-driver v1 nodes
    const named = `1:name=systemd:/system.slice/containerd.service/kubepods-burstable-pod${UID_}.slice:cri-containerd:${CID}\n0::/\n`;
    assert.deepEqual(identityFromCgroup(named), { containerId: CID, podUid: UID, runtime: 'containerd' });
  });

  it('the agent in its own cgroup namespace sees paths relative to it', () => {
    assert.deepEqual(identityFromCgroup(`0::/../../kubepods-burstable-pod${UID_}.slice/cri-containerd-${CID}.scope\n`), {
      containerId: CID,
      podUid: UID,
      runtime: 'containerd',
    });
  });

  it('a cgroup nested below the container still names it', () => {
    assert.deepEqual(identityFromCgroup(`0::/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${CID}.scope/init.scope\n`), {
      containerId: CID,
      podUid: UID,
      runtime: 'containerd',
    });
  });

  it('outside Kubernetes: docker and podman, no pod', () => {
    assert.deepEqual(identityFromCgroup(`0::/system.slice/docker-${CID}.scope\n`), { containerId: CID, runtime: 'docker' });
    assert.deepEqual(identityFromCgroup(`4:memory:/docker/${CID}\n0::/\n`), { containerId: CID, runtime: '' });
    assert.deepEqual(identityFromCgroup(`0::/machine.slice/libpod-${CID}.scope/container\n`), { containerId: CID, runtime: 'podman' });
  });

  it('no container: host processes, runtime monitors, hex-named cgroups that are not containers', () => {
    assert.deepEqual(identityFromCgroup('0::/user.slice/user-0.slice/session-1.scope\n'), {});
    assert.deepEqual(identityFromCgroup(`0::/system.slice/crio-conmon-${CID}.scope\n`), {});
    assert.deepEqual(identityFromCgroup(`0::/machine.slice/libpod-conmon-${CID}.scope\n`), {});
    assert.deepEqual(identityFromCgroup(`0::/system.slice/${CID}\n`), {});
    // a sandbox's 32-hex cgroup (this very machine's memory line looks like it)
    assert.deepEqual(identityFromCgroup('4:memory:/process_api/c4bbef2cf6c3f3212fd9d3465de1810e\n0::/\n'), {});
    assert.deepEqual(identityFromCgroup(''), {});
  });

  it('a pod-level process (no container segment) still names its pod', () => {
    assert.deepEqual(identityFromCgroup(`0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice\n`), { podUid: UID });
  });
});
