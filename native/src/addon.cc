// SPDX-License-Identifier: MIT
// Thin Node-API binding over libbpf: each function is one step of
// open -> set rodata -> load -> attach -> poll -> close. Validation, defaults,
// ordering and error wording live in src/kernel/loader.ts.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include <mutex>
#include <string>

#include "abi/events.h"
#include "abi/goctx.h" /* the skeleton names enum osp_go_counter (kept in BTF for the layout test) */
#include "abi/rtctx.h" /* and enum osp_rt */
#include <algorithm>
#include "capture.h"
#include "capture.skel.h"
#include "elf_symbols.h"
#include "golang.h"
#include "napi_setup.h"

namespace {

// libbpf's own messages (verifier log, missing tracepoints) are kept so an error
// can say why; bounded to the most recent 64 KiB.
std::mutex g_log_mu;
std::string g_log;

int LibbpfPrint(enum libbpf_print_level level, const char *fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[1024];
  int n = vsnprintf(line, sizeof line, fmt, ap);
  std::lock_guard<std::mutex> lock(g_log_mu);
  g_log.append(line, n < 0 ? 0 : std::min<size_t>(n, sizeof line - 1));
  if (g_log.size() > 65536) g_log.erase(0, g_log.size() - 65536);
  return 0;
}

// a type-tagged external: a stray object passed from JS is rejected, not cast
const napi_type_tag kCaptureTag = {0x6f737072657931ULL, 0x63617074757265ULL};

Capture *Unwrap(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(env, "expected a capture handle");
  auto ext = info[0].As<Napi::External<Capture>>();
  bool ok = false;
  napi_check_object_type_tag(env, ext, &kCaptureTag, &ok);
  if (!ok) throw Napi::TypeError::New(env, "not a capture handle");
  Capture *c = ext.Data();
  if (!c->skel) throw Napi::Error::New(env, "capture handle is closed");
  return c;
}

Napi::Error ErrnoError(Napi::Env env, const std::string &stage, int err) {
  if (err < 0) err = -err;
  auto e = Napi::Error::New(env, stage + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("stage", Napi::String::New(env, stage));
  std::lock_guard<std::mutex> lock(g_log_mu);
  e.Set("libbpfLog", Napi::String::New(env, g_log));
  return e;
}

Napi::Value Open(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  {
    std::lock_guard<std::mutex> lock(g_log_mu);
    g_log.clear();
  }
  auto *c = new Capture();
  c->skel = capture__open();
  if (!c->skel) {
    int err = errno;
    delete c;
    throw ErrnoError(env, "open", err);
  }
  auto ext = Napi::External<Capture>::New(env, c, [](Napi::Env, Capture *p) { delete p; });
  napi_type_tag_object(env, ext, &kCaptureTag);
  return ext;
}

// setRodata(h, {selfTgid, captureSize, wakeupBytes, filterPids, filterCgroups, summarize})
Napi::Value SetRodata(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  auto o = info[1].As<Napi::Object>();
  auto *ro = c->skel->rodata;
  auto u32 = [&](const char *k, auto &field) {
    if (o.Has(k)) field = o.Get(k).As<Napi::Number>().Uint32Value();
  };
  u32("selfTgid", ro->self_tgid);
  u32("captureSize", ro->capture_size);
  u32("wakeupBytes", ro->wakeup_bytes);
  u32("filterPids", ro->filter_pids);
  u32("filterCgroups", ro->filter_cgroups);
  u32("summarize", ro->summarize);
  return info.Env().Undefined();
}

bpf_map *FindMap(Capture *c, Napi::Env env, const std::string &name) {
  bpf_map *m = bpf_object__find_map_by_name(c->skel->obj, name.c_str());
  if (!m) throw Napi::Error::New(env, "no map named " + name);
  return m;
}

Napi::Value SetMapSize(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  Napi::Env env = info.Env();
  bpf_map *m = FindMap(c, env, info[1].As<Napi::String>());
  int err = bpf_map__set_max_entries(m, info[2].As<Napi::Number>().Uint32Value());
  if (err) throw ErrnoError(env, "set_max_entries", err);
  return env.Undefined();
}

Napi::Value Load(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  int err = capture__load(c->skel);
  if (err) throw ErrnoError(info.Env(), "load", err);
  return info.Env().Undefined();
}

Napi::Value Programs(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  Napi::Env env = info.Env();
  auto arr = Napi::Array::New(env);
  bpf_program *p;
  uint32_t i = 0;
  bpf_object__for_each_program(p, c->skel->obj) {
    auto o = Napi::Object::New(env);
    o.Set("name", bpf_program__name(p));
    o.Set("section", bpf_program__section_name(p));
    arr.Set(i++, o);
  }
  return arr;
}

Napi::Value Attach(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  Napi::Env env = info.Env();
  std::string name = info[1].As<Napi::String>();
  bpf_program *p = bpf_object__find_program_by_name(c->skel->obj, name.c_str());
  if (!p) throw Napi::Error::New(env, "no program named " + name);
  bpf_link *l = bpf_program__attach(p);
  if (!l) throw ErrnoError(env, "attach " + name, errno);
  c->links.emplace_back(name, l);
  return env.Undefined();
}

// attachUprobe(h, program, path, offsetOrSymbol, retprobe, pid[, cookie]) -> link id. pid -1: every
// process that maps the file (the uprobe lives on the file's inode)
Napi::Value AttachUprobe(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  Napi::Env env = info.Env();
  std::string name = info[1].As<Napi::String>();
  std::string path = info[2].As<Napi::String>();
  bpf_program *p = bpf_object__find_program_by_name(c->skel->obj, name.c_str());
  if (!p) throw Napi::Error::New(env, "no program named " + name);
  std::string symbol;
  size_t offset = 0;
  if (info[3].IsString()) symbol = info[3].As<Napi::String>().Utf8Value();
  else offset = static_cast<size_t>(info[3].As<Napi::Number>().Int64Value());
  LIBBPF_OPTS(bpf_uprobe_opts, opts);
  opts.retprobe = info[4].As<Napi::Boolean>().Value();
  if (!symbol.empty()) opts.func_name = symbol.c_str();
  int pid = info[5].As<Napi::Number>().Int32Value();
  // optional cookie (bpf_get_attach_cookie): which file's data the program should use
  if (info.Length() > 6 && info[6].IsNumber()) opts.bpf_cookie = static_cast<uint64_t>(info[6].As<Napi::Number>().Int64Value());
  bpf_link *l = bpf_program__attach_uprobe_opts(p, pid, path.c_str(), offset, &opts);
  if (!l) throw ErrnoError(env, "attach " + name + " to " + path, errno);
  uint32_t id = c->next_uprobe_id++;
  c->uprobe_links[id] = l;
  return Napi::Number::New(env, id);
}

Napi::Value DetachUprobe(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  uint32_t id = info[1].As<Napi::Number>().Uint32Value();
  auto it = c->uprobe_links.find(id);
  if (it == c->uprobe_links.end()) return Napi::Boolean::New(info.Env(), false);
  bpf_link__destroy(it->second);
  c->uprobe_links.erase(it);
  return Napi::Boolean::New(info.Env(), true);
}

// detachUprobesAsync(h, ids, done(ms)) -> how many of the ids were attached. Their links are
// destroyed on a worker thread (capture.h DetachUprobesAsync); done is called on the JS thread
// once every one is gone (ms: how long that took), until then the probes may still fire.
Napi::Value DetachUprobesAsync(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  if (info.Length() < 3 || !info[1].IsArray() || !info[2].IsFunction())
    throw Napi::TypeError::New(info.Env(), "detachUprobesAsync(handle, ids: number[], done: (ms) => void)");
  auto ids = info[1].As<Napi::Array>();
  std::vector<bpf_link *> gone;
  std::vector<uint32_t> found;
  for (uint32_t i = 0; i < ids.Length(); i++) {
    uint32_t id = ids.Get(i).As<Napi::Number>().Uint32Value();
    auto it = c->uprobe_links.find(id);
    if (it == c->uprobe_links.end() || std::find(found.begin(), found.end(), id) != found.end()) continue;
    gone.push_back(it->second);
    found.push_back(id);
  }
  size_t n = gone.size();
  // queued first (it may throw): the links leave the table only once the detach owns them
  c->DetachUprobesAsync(info.Env(), std::move(gone), info[2].As<Napi::Function>());
  for (uint32_t id : found) c->uprobe_links.erase(id);
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

// elfSymbols(path, names) -> {error?, elf, symtab, dynsym, symbols: {name: {offset, address, size}}}
Napi::Value ElfSymbolsJs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  auto arr = info[1].As<Napi::Array>();
  std::vector<std::string> names;
  for (uint32_t i = 0; i < arr.Length(); i++) names.push_back(arr.Get(i).As<Napi::String>());
  ElfSymbolsResult r = ElfSymbols(path, names);
  auto o = Napi::Object::New(env);
  if (!r.error.empty()) o.Set("error", r.error);
  o.Set("elf", r.elf);
  o.Set("symtab", r.symtab);
  o.Set("dynsym", r.dynsym);
  auto syms = Napi::Object::New(env);
  for (auto &[name, s] : r.symbols) {
    auto so = Napi::Object::New(env);
    so.Set("offset", Napi::Number::New(env, static_cast<double>(s.offset)));
    so.Set("address", Napi::Number::New(env, static_cast<double>(s.address)));
    so.Set("size", Napi::Number::New(env, static_cast<double>(s.size)));
    syms.Set(name, so);
  }
  o.Set("symbols", syms);
  return o;
}

Napi::Value Start(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  std::vector<Napi::Buffer<uint8_t>> slots;
  if (info.Length() > 4 && info[4].IsArray()) {
    auto arr = info[4].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr[i];
      if (!v.IsBuffer()) throw Napi::TypeError::New(info.Env(), "capture slots must be Buffers");
      slots.push_back(v.As<Napi::Buffer<uint8_t>>());
    }
  }
  c->Start(info.Env(), info[1].As<Napi::Function>(), info[2].As<Napi::Number>().Int32Value(),
           info[3].As<Napi::Number>().Uint32Value(), std::move(slots));
  return info.Env().Undefined();
}

// the JS side has read a slot's batch: the reader may fill it again
Napi::Value Release(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  c->Release(info[1].As<Napi::Number>().Uint32Value());
  return info.Env().Undefined();
}

Napi::Value Stop(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  c->Stop();
  return info.Env().Undefined();
}

// per-CPU counters summed, plus the reader thread's own
Napi::Value Counters(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  Napi::Env env = info.Env();
  int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> vals(ncpu > 0 ? ncpu : 1);
  int fd = bpf_map__fd(c->skel->maps.counters);
  auto arr = Napi::Array::New(env);
  for (uint32_t k = 0; k < OSP_C__COUNT; k++) {
    uint64_t sum = 0;
    if (bpf_map_lookup_elem(fd, &k, vals.data()) == 0)
      for (auto v : vals) sum += v;
    arr.Set(k, Napi::Number::New(env, (double)sum));
  }
  auto o = Napi::Object::New(env);
  o.Set("kernel", arr);
  o.Set("handoffDroppedBytes", Napi::Number::New(env, (double)c->handoff_dropped.load()));
  o.Set("batches", Napi::Number::New(env, (double)c->batches.load()));
  return o;
}

// [batches handed to JS, CLOCK_MONOTONIC ns of the reader's last empty round]: read in this
// order (idle time first), see Capture::idle_at_ns
Napi::Value Drained(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  Napi::Env env = info.Env();
  uint64_t idle = c->idle_at_ns.load();
  uint64_t batches = c->batches.load();
  auto arr = Napi::Array::New(env, 2);
  arr.Set(0u, Napi::Number::New(env, (double)batches));
  arr.Set(1u, Napi::Number::New(env, (double)idle));
  return arr;
}

Napi::Value MapCount(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  Napi::Env env = info.Env();
  bpf_map *m = FindMap(c, env, info[1].As<Napi::String>());
  int fd = bpf_map__fd(m);
  std::vector<uint8_t> key(bpf_map__key_size(m)), next(bpf_map__key_size(m));
  uint32_t n = 0;
  void *prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
    n++;
    key.swap(next);
    prev = key.data();
    if (n > 10000000) break;
  }
  return Napi::Number::New(env, n);
}

Napi::Value MapUpdate(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  Napi::Env env = info.Env();
  bpf_map *m = FindMap(c, env, info[1].As<Napi::String>());
  auto k = info[2].As<Napi::Buffer<uint8_t>>();
  auto v = info[3].As<Napi::Buffer<uint8_t>>();
  if (k.Length() != bpf_map__key_size(m) || v.Length() != bpf_map__value_size(m))
    throw Napi::Error::New(env, "key/value size mismatch");
  if (bpf_map_update_elem(bpf_map__fd(m), k.Data(), v.Data(), BPF_ANY)) throw ErrnoError(env, "map update", errno);
  return env.Undefined();
}

// lookup(h, map, key, value): fills `value` and returns true, or false when the key is absent
Napi::Value MapLookup(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  Napi::Env env = info.Env();
  bpf_map *m = FindMap(c, env, info[1].As<Napi::String>());
  auto k = info[2].As<Napi::Buffer<uint8_t>>();
  auto v = info[3].As<Napi::Buffer<uint8_t>>();
  if (k.Length() != bpf_map__key_size(m) || v.Length() != bpf_map__value_size(m))
    throw Napi::Error::New(env, "key/value size mismatch");
  if (bpf_map_lookup_elem(bpf_map__fd(m), k.Data(), v.Data())) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    throw ErrnoError(env, "map lookup", errno);
  }
  return Napi::Boolean::New(env, true);
}

// delete(h, map, key): true when the key was there
Napi::Value MapDelete(const Napi::CallbackInfo &info) {
  Capture *c = Unwrap(info);
  Napi::Env env = info.Env();
  bpf_map *m = FindMap(c, env, info[1].As<Napi::String>());
  auto k = info[2].As<Napi::Buffer<uint8_t>>();
  if (k.Length() != bpf_map__key_size(m)) throw Napi::Error::New(env, "key size mismatch");
  if (bpf_map_delete_elem(bpf_map__fd(m), k.Data())) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    throw ErrnoError(env, "map delete", errno);
  }
  return Napi::Boolean::New(env, true);
}

Napi::Value Close(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(env, "expected a capture handle");
  info[0].As<Napi::External<Capture>>().Data()->Destroy();
  return env.Undefined();
}

// CLOCK_REALTIME - CLOCK_MONOTONIC in ns: turns bpf_ktime_get_ns() into wall time
Napi::Value ClockOffset(const Napi::CallbackInfo &info) {
  timespec m1, r, m2;
  clock_gettime(CLOCK_MONOTONIC, &m1);
  clock_gettime(CLOCK_REALTIME, &r);
  clock_gettime(CLOCK_MONOTONIC, &m2);
  int64_t mono = ((int64_t)m1.tv_sec * 1000000000 + m1.tv_nsec + (int64_t)m2.tv_sec * 1000000000 + m2.tv_nsec) / 2;
  int64_t real = (int64_t)r.tv_sec * 1000000000 + r.tv_nsec;
  return Napi::BigInt::New(info.Env(), real - mono);
}

Napi::Value MonotonicNow(const Napi::CallbackInfo &info) {
  timespec m;
  clock_gettime(CLOCK_MONOTONIC, &m);
  return Napi::BigInt::New(info.Env(), (int64_t)m.tv_sec * 1000000000 + m.tv_nsec);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  libbpf_set_print(LibbpfPrint);
  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("setRodata", Napi::Function::New(env, SetRodata));
  exports.Set("setMapSize", Napi::Function::New(env, SetMapSize));
  exports.Set("load", Napi::Function::New(env, Load));
  exports.Set("programs", Napi::Function::New(env, Programs));
  exports.Set("attach", Napi::Function::New(env, Attach));
  exports.Set("attachUprobe", Napi::Function::New(env, AttachUprobe));
  exports.Set("detachUprobe", Napi::Function::New(env, DetachUprobe));
  exports.Set("detachUprobesAsync", Napi::Function::New(env, DetachUprobesAsync));
  exports.Set("elfSymbols", Napi::Function::New(env, ElfSymbolsJs));
  exports.Set("start", Napi::Function::New(env, Start));
  exports.Set("release", Napi::Function::New(env, Release));
  exports.Set("stop", Napi::Function::New(env, Stop));
  exports.Set("counters", Napi::Function::New(env, Counters));
  exports.Set("drained", Napi::Function::New(env, Drained));
  exports.Set("mapCount", Napi::Function::New(env, MapCount));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("clockOffset", Napi::Function::New(env, ClockOffset));
  exports.Set("monotonicNow", Napi::Function::New(env, MonotonicNow));
  exports.Set("counterCount", Napi::Number::New(env, OSP_C__COUNT));
  InitGolang(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(osprey_native, Init)
