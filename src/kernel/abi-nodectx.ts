// The TS face of bpf/abi/nodectx.h: one node_bins slot per attached node executable or
// libnode (checked against the object's BTF in abi.test.ts). Written by src/agent/nodectx/.

export const NODE_BINS = 16;
export const NODE_BINS_MAP = 'node_bins';

/** struct osp_node_bin: field -> [offset, size] */
export const NODE_BIN_LAYOUT = {
  wrap_realm: [0, 4],
  realm_env: [4, 4],
  wrap_async_id: [8, 4],
  env_depth: [12, 4],
  env_hooks: [16, 4],
  hooks_ids: [20, 4],
} as const;
export const NODE_BIN_SIZE = 24;
