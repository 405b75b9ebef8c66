// SPDX-License-Identifier: MIT
// One loaded copy of bpf/capture.bpf.c: skeleton, attach links, ring-buffer reader thread.
#pragma once
#include <atomic>
#include <cstdint>
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

  // reader thread: polls the ring buffer, hands JS one Buffer of many records.
  // Lifetime: started by Start() on the JS thread, stopped and joined by Stop()
  // (also from the destructor). The thread never blocks on JS: when the
  // threadsafe-function queue is full it retries until told to stop, so Stop()
  // from the JS thread cannot deadlock against a full queue. Records it could not
  // deliver are counted in handoff_dropped.
  void Start(Napi::Env env, Napi::Function on_batch, int poll_ms, size_t batch_bytes);
  void Stop();
  void Destroy();

  std::atomic<uint64_t> handoff_dropped{0};
  std::atomic<uint64_t> batches{0};

 private:
  void Run();
  static int OnRecord(void *ctx, void *data, size_t size);

  ring_buffer *rb_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool running_ = false;
  Napi::ThreadSafeFunction tsfn_;
  std::unique_ptr<std::vector<uint8_t>> batch_;
  int poll_ms_ = 50;
  size_t batch_bytes_ = 1 << 20;
};
