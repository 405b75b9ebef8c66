// SPDX-License-Identifier: MIT
// One loaded copy of bpf/capture.bpf.c: skeleton, attach links, ring-buffer reader thread.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "napi_setup.h"

struct capture;
struct ring_buffer;
struct bpf_link;

class Capture {
 public:
  Capture();
  ~Capture();

  capture *skel = nullptr;
  std::vector<std::pair<std::string, bpf_link *>> links;
  // uprobes attached on demand (src/kernel attachUprobe), by an id JS holds to detach them
  std::map<uint32_t, bpf_link *> uprobe_links;
  uint32_t next_uprobe_id = 1;
  // Queues `gone` (the caller takes them out of uprobe_links once this returned) for the
  // detach thread, which destroys them and then calls `done` on the JS thread.
  // bpf_link__destroy of a uprobe waits for an RCU grace period (wall time, little CPU):
  // ~11 links of a file took 1-3 s on the JS thread one by one. One detach thread per
  // Capture takes the jobs in order, each on at most 16 threads (DestroyParallel), so a stop
  // with many files never starts more than 17 threads. Destroy() lets it finish the queue and
  // joins it before the programs go (a link must not outlive its program). Throws (nothing
  // queued) when the JS callback cannot be set up.
  void DetachUprobesAsync(Napi::Env env, std::vector<bpf_link *> gone, Napi::Function done);

  // reader thread: polls the ring buffer, hands JS one Buffer of many records.
  // Lifetime: started by Start() on the JS thread, stopped and joined by Stop()
  // (also from the destructor). The thread never blocks on JS: when the
  // threadsafe-function queue is full it retries until told to stop, so Stop()
  // from the JS thread cannot deadlock against a full queue. Records it could not
  // deliver are counted in handoff_dropped.
  // slots: JS-owned buffers the reader fills in turn (JS releases each one with Release()
  // once it has read it); reusing them spares V8 a new external ArrayBuffer per batch,
  // whose memory pressure made it run a full GC about every second.
  void Start(Napi::Env env, Napi::Function on_batch, int poll_ms, size_t batch_bytes, std::vector<Napi::Buffer<uint8_t>> slots);
  void Release(uint32_t slot);
  void Stop();
  void Destroy();

  std::atomic<uint64_t> handoff_dropped{0};
  // batches handed to JS (counted once the threadsafe-function call is queued)
  std::atomic<uint64_t> batches{0};
  // CLOCK_MONOTONIC ns of the reader's last round that found the ring buffer empty. It is
  // stored after `batches` counted every earlier batch, so JS, having received that many
  // batches, has seen every record committed before this time (src/agent: the watermark
  // that lets held spans go when no new events arrive, without racing batches in flight)
  std::atomic<uint64_t> idle_at_ns{0};

 private:
  void Run();
  static int OnRecord(void *ctx, void *data, size_t size);

  ring_buffer *rb_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool running_ = false;
  Napi::ThreadSafeFunction tsfn_;
  struct Slot {
    uint8_t *data = nullptr;
    size_t cap = 0;
    std::atomic<bool> busy{false};
    Napi::Reference<Napi::Buffer<uint8_t>> ref;  // keeps the JS buffer alive
  };
  std::unique_ptr<Slot[]> slots_;
  size_t nslots_ = 0;
  // the slot being filled (-1: none), and how much of it
  int cur_ = -1;
  size_t used_ = 0;
  // the final drain at stop (no slot is taken then) goes to an owned vector handed over
  // as an external Buffer
  std::unique_ptr<std::vector<uint8_t>> batch_;
  int poll_ms_ = 50;
  size_t batch_bytes_ = 1 << 20;
  // the uprobe detach queue (DetachUprobesAsync) and its thread, started on first use
  struct DetachJob {
    std::vector<bpf_link *> links;
    Napi::ThreadSafeFunction done;
  };
  std::mutex detach_mu_;
  std::condition_variable detach_cv_;
  std::deque<DetachJob> detach_q_;
  bool detach_stop_ = false;
  std::thread detach_thread_;
  void DetachLoop();
  void StopDetacher();
};
