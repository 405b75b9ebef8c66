// SPDX-License-Identifier: MIT
#include "capture.h"

#include <time.h>

#include <bpf/libbpf.h>

#include <pthread.h>
#include <algorithm>
#include <chrono>
#include <cstring>

#include "abi/events.h"
#include "abi/goctx.h" /* the skeleton names enum osp_go_counter (kept in BTF for the layout test) */
#include "abi/rtctx.h" /* and enum osp_rt */
#include "capture.skel.h"

Capture::Capture() = default;

Capture::~Capture() { Destroy(); }

// Room a slot must still have before the next record: more than the largest one
// (header + the largest payload capture + padding).
static constexpr size_t kRecordRoom = 16384;

int Capture::OnRecord(void *ctx, void *data, size_t size) {
  auto *self = static_cast<Capture *>(ctx);
  auto *p = static_cast<const uint8_t *>(data);
  // keep records 8-byte aligned in the batch so JS can read 64-bit fields in place
  size_t pad = (8 - (size & 7)) & 7;
  if (self->cur_ >= 0) {
    Slot &slot = self->slots_[self->cur_];
    if (size + pad > slot.cap - self->used_) {  // cannot happen while records are < kRecordRoom
      self->handoff_dropped += size;
      return -1;
    }
    memcpy(slot.data + self->used_, p, size);
    memset(slot.data + self->used_ + size, 0, pad);
    self->used_ += size + pad;
    // a negative value ends libbpf's consume loop (this record is consumed already):
    // the batch is full, or the next record might not fit
    return self->used_ >= self->batch_bytes_ || slot.cap - self->used_ < kRecordRoom ? -1 : 0;
  }
  self->batch_->insert(self->batch_->end(), p, p + size);
  self->batch_->insert(self->batch_->end(), pad, 0);
  return 0;
}

void Capture::Start(Napi::Env env, Napi::Function on_batch, int poll_ms, size_t batch_bytes,
                    std::vector<Napi::Buffer<uint8_t>> slots) {
  if (running_) throw Napi::Error::New(env, "capture already started");
  poll_ms_ = poll_ms;
  batch_bytes_ = batch_bytes;
  nslots_ = slots.size();
  slots_ = std::make_unique<Slot[]>(nslots_);
  for (size_t i = 0; i < nslots_; i++) {
    if (slots[i].Length() < batch_bytes_ + kRecordRoom) throw Napi::Error::New(env, "capture slot buffer too small");
    slots_[i].data = slots[i].Data();
    slots_[i].cap = slots[i].Length();
    slots_[i].ref = Napi::Persistent(slots[i]);
  }
  cur_ = -1;
  batch_ = std::make_unique<std::vector<uint8_t>>();
  rb_ = ring_buffer__new(bpf_map__fd(skel->maps.events), OnRecord, this, nullptr);
  if (!rb_) throw Napi::Error::New(env, "ring_buffer__new failed");
  tsfn_ = Napi::ThreadSafeFunction::New(env, on_batch, "osprey-ringbuf", 64, 1);
  stop_ = false;
  running_ = true;
  thread_ = std::thread([this] {
    // named, so per-thread CPU (/proc/<pid>/task/*/comm) tells the reader apart
    pthread_setname_np(pthread_self(), "osprey-ringbuf");
    Run();
  });
  // and named from here too, before this returns: src/proc/background-priority.ts keeps this
  // thread's priority by its name and must never see it unnamed
  pthread_setname_np(thread_.native_handle(), "osprey-ringbuf");
}

void Capture::Release(uint32_t slot) {
  if (slot < nslots_) slots_[slot].busy.store(false);
}

namespace {
struct SlotBatch {
  uint32_t slot;
  size_t len;
};
}  // namespace

void Capture::Run() {
  auto deliver_vec = [](Napi::Env env, Napi::Function fn, std::vector<uint8_t> *v) {
    // hand the bytes to JS without a copy; the finalizer frees them
    auto buf = Napi::Buffer<uint8_t>::New(env, v->data(), v->size(),
                                          [](Napi::Env, uint8_t *, std::vector<uint8_t> *h) { delete h; }, v);
    fn.Call({buf});
  };
  auto deliver_slot = [](Napi::Env env, Napi::Function fn, SlotBatch *b) {
    uint32_t slot = b->slot;
    size_t len = b->len;
    delete b;
    fn.Call({Napi::Number::New(env, slot), Napi::Number::New(env, static_cast<double>(len))});
  };
  size_t next = 0;
  while (!stop_.load()) {
    if (cur_ < 0) {
      // the next free slot, round robin; none free: JS is behind, records wait in the
      // ring buffer (the kernel counts what it cannot keep)
      for (size_t k = 0; k < nslots_ && cur_ < 0; k++) {
        size_t i = (next + k) % nslots_;
        bool expected = false;
        if (slots_[i].busy.compare_exchange_strong(expected, true)) {
          cur_ = static_cast<int>(i);
          next = i + 1;
        }
      }
      if (cur_ < 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      used_ = 0;
    }
    // wakeups are batched in the kernel, so poll with a short timeout and drain
    // whatever is there either way (both stop early once the slot is full)
    if (ring_buffer__poll(rb_, poll_ms_) >= 0) ring_buffer__consume(rb_);
    if (used_ == 0) {
      // nothing came this round: every record committed before now is in a batch counted
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC, &now);
      idle_at_ns.store(static_cast<uint64_t>(now.tv_sec) * 1000000000ull + static_cast<uint64_t>(now.tv_nsec));
      continue;  // keep the slot for the next round
    }
    auto *b = new SlotBatch{static_cast<uint32_t>(cur_), used_};
    cur_ = -1;
    for (;;) {
      napi_status st = tsfn_.NonBlockingCall(b, deliver_slot);
      if (st == napi_ok) {
        batches++;
        break;
      }
      if (st != napi_queue_full || stop_.load()) {
        handoff_dropped += b->len;
        slots_[b->slot].busy.store(false);
        delete b;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  if (cur_ >= 0) {
    slots_[cur_].busy.store(false);
    cur_ = -1;
  }
  // drain what is left so a clean stop loses nothing that was already captured; JS may
  // not release a slot any more, so this goes through an owned buffer
  ring_buffer__consume(rb_);
  if (!batch_->empty()) {
    auto *out = batch_.release();
    if (tsfn_.NonBlockingCall(out, deliver_vec) != napi_ok) {
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
  // JS keeps its own references to the slot buffers for the batches still queued
  for (size_t i = 0; i < nslots_; i++) slots_[i].ref.Reset();
}

// destroys the links on up to 16 threads (overlapping RCU grace periods), and waits. Measured
// for a libssl's 11 uprobe links: 0.85-1.04 s this way, 1.0-1.23 s one by one (uprobe grace
// periods overlap little); the bound keeps a stop with many files from starting hundreds of
// threads. A thread that cannot be created (pids.max, RLIMIT_NPROC) is not needed: the calling
// thread takes whatever the others do not.
static void DestroyParallel(const std::vector<bpf_link *> &gone) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < gone.size();) bpf_link__destroy(gone[i]);
  };
  std::vector<std::thread> t;
  size_t n = std::min<size_t>(gone.size(), 16);
  t.reserve(n);
  for (size_t k = 1; k < n; k++) {
    try {
      t.emplace_back(work);
    } catch (...) {
      break;
    }
  }
  work();
  for (auto &x : t) x.join();
}

// destroys the links, then tells JS how long that took (ms) through `done` and releases it.
// The call's queue is unlimited: it never blocks, so Destroy() joining the detach thread from
// the JS thread cannot deadlock.
static void DestroyAndTell(const std::vector<bpf_link *> &links, Napi::ThreadSafeFunction &done) {
  auto t0 = std::chrono::steady_clock::now();
  DestroyParallel(links);
  auto *ms = new double(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  if (done.NonBlockingCall(ms, [](Napi::Env e, Napi::Function fn, double *v) {
        double d = *v;
        delete v;
        fn.Call({Napi::Number::New(e, d)});
      }) != napi_ok)
    delete ms;  // the environment is going away: nobody to tell
  done.Release();
}

void Capture::DetachLoop() {
  pthread_setname_np(pthread_self(), "osprey-detach");
  for (;;) {
    DetachJob job;
    {
      std::unique_lock<std::mutex> lk(detach_mu_);
      detach_cv_.wait(lk, [this] { return detach_stop_ || !detach_q_.empty(); });
      if (detach_q_.empty()) return;  // stopping, and nothing left to do
      job = std::move(detach_q_.front());
      detach_q_.pop_front();
    }
    DestroyAndTell(job.links, job.done);
  }
}

void Capture::DetachUprobesAsync(Napi::Env env, std::vector<bpf_link *> gone, Napi::Function done) {
  // the function keeps the event loop alive until it is called
  auto tsfn = Napi::ThreadSafeFunction::New(env, done, "osprey-uprobe-detach", 0, 1);
  std::unique_lock<std::mutex> lk(detach_mu_);
  if (!detach_thread_.joinable()) {
    try {
      detach_thread_ = std::thread([this] { DetachLoop(); });
    } catch (...) {
      // no thread to be had: detach here, on the JS thread, as before
      lk.unlock();
      DestroyAndTell(gone, tsfn);
      return;
    }
  }
  detach_q_.push_back(DetachJob{std::move(gone), tsfn});
  lk.unlock();
  detach_cv_.notify_one();
}

void Capture::StopDetacher() {
  {
    std::lock_guard<std::mutex> lk(detach_mu_);
    detach_stop_ = true;
  }
  detach_cv_.notify_one();
  // it finishes the queue first
  if (detach_thread_.joinable()) detach_thread_.join();
}

void Capture::Destroy() {
  Stop();
  // links being detached by the detach thread go first (the skeleton's programs must outlive them)
  StopDetacher();
  // each tracepoint detach waits for an RCU grace period (~80 ms here); detaching
  // in parallel lets the grace periods overlap, so 26 links take ~0.2 s, not 2 s
  std::vector<bpf_link *> all;
  all.reserve(links.size() + uprobe_links.size());
  for (auto &l : links) all.push_back(l.second);
  for (auto &l : uprobe_links) all.push_back(l.second);
  DestroyParallel(all);
  links.clear();
  uprobe_links.clear();
  if (skel) capture__destroy(skel);
  skel = nullptr;
}
