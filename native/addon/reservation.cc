// The emulated program break. The real brk belongs to the glibc that runs Node, so the layer reserves one
// range of address space (PROT_NONE) and moves a break of its own inside it: growing makes pages read-write
// with mprotect, shrinking drops their contents (madvise MADV_DONTNEED) and makes them PROT_NONE again, and
// growing past the reservation fails as sbrk fails (-1, as glibc's MORECORE_FAILURE).
//
// The reservation is mapped without MAP_NORESERVE on purpose: a PROT_NONE private mapping is not charged
// against the overcommit limit anyway, and leaving VM_NORESERVE off makes each mprotect that commits pages
// go through the kernel's overcommit check (security_vm_enough_memory), the same check brk makes. With
// MAP_NORESERVE, a growth larger than RAM would succeed here and fail in the real glibc (the oracle).
//
// With a backing (backing.cc) the committed pages are a shared memfd's or a file's instead, mapped over the
// reservation; the growth still passes the same overcommit check first.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <vector>

#include "errors.h"
#include "layer.h"
#include "sigbus.h"

namespace mallocscope {

namespace {

// Every layer alive in the process (worker threads included, hence the lock), for ReleaseCollected.
std::mutex live_mutex;
std::vector<Layer*> live_layers;

}  // namespace

Napi::Function Layer::Define(Napi::Env env) {
  return DefineClass(env, "Layer",
                     {
                         InstanceMethod<&Layer::Info>("info"),
                         InstanceMethod<&Layer::Sbrk>("sbrk"),
                         InstanceMethod<&Layer::Release>("release"),
                         InstanceMethod<&Layer::Mmap>("mmap"),
                         InstanceMethod<&Layer::Munmap>("munmap"),
                         InstanceMethod<&Layer::Mremap>("mremap"),
                         InstanceMethod<&Layer::Madvise>("madvise"),
                         InstanceMethod<&Layer::Regions>("regions"),
                         InstanceMethod<&Layer::Reserve>("reserve"),
                         InstanceMethod<&Layer::Mprotect>("mprotect"),
                         InstanceMethod<&Layer::Bytes>("bytes"),
                         InstanceMethod<&Layer::Detach>("detach"),
                         InstanceMethod<&Layer::Copy>("copy"),
                         InstanceMethod<&Layer::Zero>("zero"),
                         InstanceMethod<&Layer::Protect>("protect"),
                         InstanceMethod<&Layer::Lock>("lock"),
                         InstanceMethod<&Layer::Unlock>("unlock"),
                         InstanceMethod<&Layer::Resident>("resident"),
                         InstanceMethod<&Layer::Backing>("backing"),
                         InstanceMethod<&Layer::Check>("check"),
                         InstanceMethod<&Layer::Faults>("faults"),
                     });
}

// new Layer(reserveBytes, guardPages, backing): backing undefined (private memory), 'shared' (a memfd) or
// { file: path } (a regular file).
Layer::Layer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Layer>(info) {
  Napi::Env env = info.Env();
  env_ = env;
  ReleaseCollected(env);
  page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  uint64_t reserve = ArgPageMultiple(info, 0, "reserve", page_, true);
  guard_pages_ = info.Length() > 1 && info[1].ToBoolean().Value();
  void* start = mmap(nullptr, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (start == MAP_FAILED) {
    released_ = true;
    ThrowErrno(env, errno, "mmap", "reserving " + std::to_string(reserve) + " bytes of address space for the emulated break");
  }
  base_ = reinterpret_cast<uintptr_t>(start);
  reserved_ = reserve;
  brk_ = committed_ = base_;
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    try {
      OpenBacking(env, info[2]);
    } catch (...) {
      // No object comes out of a constructor that throws: nothing would ever unmap the reservation.
      munmap(start, reserve);
      CloseBacking();
      released_ = true;
      throw;
    }
  }
  std::lock_guard<std::mutex> hold(live_mutex);
  live_layers.push_back(this);
}

Layer::~Layer() {
  {
    std::lock_guard<std::mutex> hold(live_mutex);
    live_layers.erase(std::remove(live_layers.begin(), live_layers.end(), this), live_layers.end());
  }
  // Garbage collected without release(): the views still alive must not outlive their memory.
  ReleaseAll(Napi::Env(env_));
}

void Layer::ReleaseCollected(Napi::Env env) {
  std::vector<Layer*> collected;
  {
    std::lock_guard<std::mutex> hold(live_mutex);
    for (Layer* layer : live_layers) {
      // The wrapper's reference is weak: it reads as empty once the GC collected the JavaScript object.
      if (layer->env_ == static_cast<napi_env>(env) && !layer->released_ && layer->Value().IsEmpty()) collected.push_back(layer);
    }
  }
  for (Layer* layer : collected) layer->ReleaseAll(env);
}

void Layer::ReportExternal(Napi::Env env) {
  int64_t now = 0;
  if (!released_) {
    now = static_cast<int64_t>(committed_ - base_);
    for (auto& [address, mapping] : mappings_) now += static_cast<int64_t>(mapping.length);
    // A reservation's PROT_NONE pages hold nothing: only what mprotect made read-write counts.
    for (auto& [start, range] : uncommitted_) now -= static_cast<int64_t>(range.first - start);
  }
  if (now == reported_) return;
  int64_t total = 0;
  napi_adjust_external_memory(env, now - reported_, &total);
  reported_ = now;
}

void Layer::CheckLive(Napi::Env env, bool guard) const {
  if (released_) ThrowCoded(env, kReleased, "this native system was released; create a new one");
  if (guard_slot_ >= 0 && GuardFaults(guard_slot_) != 0) {
    ThrowMallocscope(env, kBackingLost,
                     (backing_file_ ? backing_path_ : std::string("the shared heap")) + ": " + std::to_string(GuardFaults(guard_slot_)) +
                         " page(s) of the heap's backing vanished under it (the file was truncated, or a page could not be written: disk "
                         "full); the heap reads zeros there and no longer matches its backing. Release this system");
  }
  // A handler installed over the guard (process.on('SIGBUS') does, through libuv) would make a write past a
  // truncated file's end fault forever: refused while no page was lost yet (sigbus.cc). Only a memfd that is
  // sealed against shrinking needs no guard.
  if (guard && backing_file_ && guard_slot_ >= 0 && !GuardInstalled()) {
    ThrowMallocscope(env, kBackingUnguarded,
                     backing_path_ + ": another SIGBUS handler replaced the heap's guard (a process.on('SIGBUS') listener, or a native "
                                     "sigaction): a write past the file's end, should someone truncate it, would fault forever. Release "
                                     "this system; a new backing installs the guard again, in front of that handler");
  }
}

// { base, size, pageSize, guardPages }
Napi::Value Layer::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("base", Napi::Number::New(env, static_cast<double>(base_)));
  out.Set("size", Napi::Number::New(env, static_cast<double>(reserved_)));
  out.Set("pageSize", Napi::Number::New(env, static_cast<double>(page_)));
  out.Set("guardPages", Napi::Boolean::New(env, guard_pages_));
  return out;
}

// sbrk(increment): the old break, or -1 when the kernel refuses (ENOMEM) or the reservation is exhausted.
// JavaScript keeps its own copy of the break and never calls this for sbrk(0).
Napi::Value Layer::Sbrk(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t increment = ArgInt(info, 0, "increment");
  CheckLive(env, true);
  uintptr_t old = brk_;
  auto failed = [&] { return Napi::Number::New(env, -1); };
  if (increment == 0) return Napi::Number::New(env, static_cast<double>(old));
  uintptr_t next;
  if (increment > 0) {
    if (static_cast<uint64_t>(increment) > base_ + reserved_ - brk_) return failed();
    next = brk_ + static_cast<uintptr_t>(increment);
  } else {
    // The kernel refuses a break below its start.
    if (static_cast<uint64_t>(-increment) > brk_ - base_) return failed();
    next = brk_ - static_cast<uintptr_t>(-increment);
  }
  uintptr_t next_committed = AlignUp(next, page_);
  if (next_committed > committed_) {
    // With a backing too: this mprotect makes the overcommit check brk makes; the backing's pages replace
    // the private ones right after.
    if (mprotect(reinterpret_cast<void*>(committed_), next_committed - committed_, PROT_READ | PROT_WRITE) != 0) {
      int err = errno;
      if (err == ENOMEM || err == EAGAIN) return failed();
      ThrowErrno(env, err, "mprotect", "growing the emulated break by " + std::to_string(increment) + " bytes");
    }
    if (backed() && !GrowBacking(env, committed_, next_committed)) return failed();
  } else if (next_committed < committed_) {
    void* from = reinterpret_cast<void*>(next_committed);
    size_t length = committed_ - next_committed;
    InvalidateViews(env, next_committed, committed_);
    ForgetProtections(next_committed, committed_);
    if (backed()) {
      ShrinkBacking(env, next_committed, committed_);
    } else if (madvise(from, length, MADV_DONTNEED) != 0) {
      // Locked pages (mlock, mlockall) refuse MADV_DONTNEED: unlock them, as a shrinking brk would.
      if (errno != EINVAL || munlock(from, length) != 0 || madvise(from, length, MADV_DONTNEED) != 0) {
        ThrowErrno(env, errno, "madvise", "shrinking the emulated break");
      }
    }
    if (!backed() && mprotect(from, length, PROT_NONE) != 0) ThrowErrno(env, errno, "mprotect", "shrinking the emulated break");
  }
  brk_ = next;
  bool moved = committed_ != next_committed;
  committed_ = next_committed;
  if (moved) ReportExternal(env);
  return Napi::Number::New(env, static_cast<double>(old));
}

// release(): unmaps the reservation and every mapping, detaching every view. Idempotent.
Napi::Value Layer::Release(const Napi::CallbackInfo& info) {
  ReleaseAll(info.Env());
  return info.Env().Undefined();
}

void Layer::ReleaseAll(Napi::Env env) {
  if (released_) return;
  // Views first: once the memory is gone, touching a still-attached view would crash the process.
  while (!views_.empty()) DetachView(env, views_.begin()->second);
  for (auto& [address, mapping] : mappings_) {
    munmap(reinterpret_cast<void*>(address - mapping.front_guard), mapping.front_guard + mapping.length + mapping.back_guard);
  }
  mappings_.clear();
  protections_.clear();
  uncommitted_.clear();
  // Unguarded before it is unmapped: the SIGBUS handler must never map over memory that is gone.
  if (guard_slot_ >= 0) UnguardRange(guard_slot_);
  guard_slot_ = -1;
  if (reserved_) munmap(reinterpret_cast<void*>(base_), reserved_);
  CloseBacking();
  released_ = true;
  ReportExternal(env);
}

bool Layer::HandedOut(uintptr_t address, size_t length) const {
  if (address + length < address) return false;
  if (address >= base_ && address + length <= committed_) return true;
  auto it = mappings_.upper_bound(address);
  if (it == mappings_.begin()) return false;
  --it;
  if (address + length > it->first + it->second.length) return false;
  return !it->second.reservation || !Overlaps(uncommitted_, address, address + length);
}

void Layer::RequireHandedOut(Napi::Env env, uintptr_t address, size_t length, const char* what) const {
  if (!HandedOut(address, length)) {
    ThrowRange(env, kNotMapped, std::string(what) + ": " + Hex(address) + "+" + std::to_string(length) +
                                    " is not inside the emulated heap or a mapping this native system handed out (nor in the read-write part of a"
                                    " reservation)");
  }
}

}  // namespace mallocscope
