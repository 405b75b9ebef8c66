// Which container (and which pod) a process runs in, from its /proc/<pid>/cgroup.
//
// The kubelet, the container runtime and the cgroup driver decide the path. The forms
// handled here, all seen on real nodes:
//   systemd driver (cgroup v2, and the v1 hierarchies of a hybrid host):
//     /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope
//     /kubepods.slice/kubepods-pod<uid>.slice/crio-<id>.scope              (Guaranteed QoS has no class slice)
//     /kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/docker-<id>.scope (dockershim, cri-dockerd)
//     /kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/…/cri-containerd-<id>.scope   (kind, kubelet in a slice)
//     /system.slice/containerd.service/kubepods-burstable-pod<uid>.slice:cri-containerd:<id>   (containerd's own v1 name=systemd view)
//   cgroupfs driver (k3s, GKE, older EKS):
//     /kubepods/burstable/pod<uid>/<id>     /kubepods/pod<uid>/<id>     /kubepods/besteffort/pod<uid>/<id>
//   outside Kubernetes: /docker/<id>, /system.slice/docker-<id>.scope, /machine.slice/libpod-<id>.scope (podman)
// The agent may sit in its own cgroup namespace (a DaemonSet without hostCgroup): paths are then
// relative to it and start with /../.. - only the tail of a path is matched, never its root.
// `crio-conmon-<id>` and `libpod-conmon-<id>` are the runtime's monitor process, not the container.
// A nested cgroup below the container's (systemd in a container, a .scope/init) still names the
// container in a parent segment: the deepest segment that names a container wins.

export interface CgroupIdentity {
  /** 64 lowercase hex (containerd, CRI-O, Docker, podman) */
  containerId?: string;
  /** the pod's metadata.uid (dashes, lowercase), when the path names a Kubernetes pod */
  podUid?: string;
  /** the runtime the path names: containerd, cri-o, docker, podman, or '' (a bare id) */
  runtime?: string;
}

const ID = '[0-9a-f]{64}';
/** one path segment that names a container */
const CONTAINER_SEGMENT = new RegExp(
  `^(?:(cri-containerd|crio|docker|libpod)-(${ID})(?:\\.scope)?|[^:]*:(cri-containerd|crio|docker):(${ID})|(${ID}))$`,
);
/** a pod's segment: kubepods-…-pod<uid>.slice (systemd, underscores) or pod<uid> (cgroupfs) */
const POD_SEGMENT = /(?:^|-)pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$/;

const RUNTIME: Record<string, string> = { 'cri-containerd': 'containerd', crio: 'cri-o', docker: 'docker', libpod: 'podman' };

/** the container and pod named by one cgroup path (one line's third field) */
export function identityFromPath(path: string): CgroupIdentity {
  const out: CgroupIdentity = {};
  const segments = path.split('/');
  for (let i = segments.length - 1; i >= 0; i--) {
    const seg = segments[i]!;
    if (out.containerId === undefined) {
      const m = CONTAINER_SEGMENT.exec(seg);
      if (m) {
        out.containerId = m[2] ?? m[4] ?? m[5];
        out.runtime = RUNTIME[m[1] ?? m[3] ?? ''] ?? '';
        // containerd's `<pod slice>:cri-containerd:<id>` carries the pod in the same segment
        const pod = m[3] !== undefined ? POD_SEGMENT.exec(seg.slice(0, seg.indexOf(':'))) : null;
        if (pod) {
          out.podUid = pod[1]!.replace(/_/g, '-');
          break;
        }
        continue;
      }
    }
    const p = POD_SEGMENT.exec(seg);
    if (p) {
      out.podUid = p[1]!.replace(/_/g, '-');
      break;
    }
  }
  // a bare 64-hex segment is a container only inside a pod or a known runtime's tree: a
  // random hex-named cgroup (a systemd unit, a sandbox) must not pass for one
  if (out.runtime === '' && out.podUid === undefined && !/(^|\/)(docker|kubepods|k8s\.io|containerd)(\/|$)/.test(path)) return {};
  return out;
}

/**
 * The container and pod of a process from the text of /proc/<pid>/cgroup. The unified (v2)
 * line `0::<path>` is read first; on a v1 or hybrid host, the controller lines after it (the
 * kubelet places a container in every hierarchy, so any of them names it).
 */
export function identityFromCgroup(text: string): CgroupIdentity {
  const lines = text.split('\n');
  const paths: string[] = [];
  for (const line of lines) {
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    if (b < 0) continue;
    const path = line.slice(b + 1);
    if (line.startsWith('0::')) paths.unshift(path);
    else paths.push(path);
  }
  let best: CgroupIdentity = {};
  for (const p of paths) {
    const id = identityFromPath(p);
    if (id.containerId !== undefined && id.podUid !== undefined) return id;
    if (best.containerId === undefined && (id.containerId !== undefined || (best.podUid === undefined && id.podUid !== undefined))) best = id;
  }
  return best;
}

/** the container id alone (kept for callers that need nothing else) */
export function containerIdFromCgroup(text: string): string | undefined {
  return identityFromCgroup(text).containerId;
}
