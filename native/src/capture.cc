// SPDX-License-Identifier: MIT
#include "capture.h"

#include <bpf/libbpf.h>

#include <chrono>

#include "abi/events.h"
#include "capture.skel.h"

Capture::Capture() = default;

Capture::~Capture() { Destroy(); }

int Capture::OnRecord(void *ctx, void *data, size_t size) {
  auto *self = static_cast<Capture *>(ctx);
  auto *p = static_cast<const uint8_t *>(data);
  self->batch_->insert(self->batch_->end(), p, p + size);
  // keep records 8-byte aligned in the batch so JS can read 64-bit fields in place
  size_t pad = (8 - (size & 7)) & 7;
  self->batch_->insert(self->batch_->end(), pad, 0);
  // stop this consume round when the batch is full; the rest waits for the next
  return self->batch_->size() >= self->batch_bytes_ ? 1 : 0;
}

void Capture::Start(Napi::Env env, Napi::Function on_batch, int poll_ms, size_t batch_bytes) {
  if (running_) throw Napi::Error::New(env, "capture already started");
  poll_ms_ = poll_ms;
  batch_bytes_ = batch_bytes;
  batch_ = std::make_unique<std::vector<uint8_t>>();
  batch_->reserve(batch_bytes_ + 8192);
  rb_ = ring_buffer__new(bpf_map__fd(skel->maps.events), OnRecord, this, nullptr);
  if (!rb_) throw Napi::Error::New(env, "ring_buffer__new failed");
  tsfn_ = Napi::ThreadSafeFunction::New(env, on_batch, "osprey-ringbuf", 64, 1);
  stop_ = false;
  running_ = true;
  thread_ = std::thread([this] { Run(); });
}

void Capture::Run() {
  auto deliver = [](Napi::Env env, Napi::Function fn, std::vector<uint8_t> *v) {
    // hand the bytes to JS without a copy; the finalizer frees them
    auto buf = Napi::Buffer<uint8_t>::New(env, v->data(), v->size(),
                                          [](Napi::Env, uint8_t *, std::vector<uint8_t> *h) { delete h; }, v);
    fn.Call({buf});
  };
  while (!stop_.load()) {
    // wakeups are batched in the kernel, so poll with a short timeout and drain
    // whatever is there either way
    ring_buffer__poll(rb_, poll_ms_);
    ring_buffer__consume(rb_);
    if (batch_->empty()) continue;
    auto *out = batch_.release();
    batch_ = std::make_unique<std::vector<uint8_t>>();
    batch_->reserve(batch_bytes_ + 8192);
    batches++;
    for (;;) {
      napi_status st = tsfn_.NonBlockingCall(out, deliver);
      if (st == napi_ok) break;
      if (st != napi_queue_full || stop_.load()) {
        handoff_dropped += out->size();
        delete out;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  // drain what is left so a clean stop loses nothing that was already captured
  ring_buffer__consume(rb_);
  if (!batch_->empty()) {
    auto *out = batch_.release();
    if (tsfn_.NonBlockingCall(out, deliver) != napi_ok) {
      handoff_dropped += out->size();
      delete out;
    }
  }
}

void Capture::Stop() {
  if (!running_) return;
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  tsfn_.Release();
  running_ = false;
  ring_buffer__free(rb_);
  rb_ = nullptr;
}

void Capture::Destroy() {
  Stop();
  // each tracepoint detach waits for an RCU grace period (~80 ms here); detaching
  // in parallel lets the grace periods overlap, so 26 links take ~0.1 s, not 2 s
  std::vector<std::thread> detach;
  detach.reserve(links.size());
  for (auto &l : links) detach.emplace_back([link = l.second] { bpf_link__destroy(link); });
  for (auto &t : detach) t.join();
  links.clear();
  if (skel) capture__destroy(skel);
  skel = nullptr;
}
