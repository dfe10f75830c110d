// mprotect and mlock, as the seed documents use them: a block made read-only (configuration data that only
// its own update path may change) or no-access and back; pages locked in RAM so they never reach swap
// (mlock), or the whole process locked (mlockall MCL_CURRENT | MCL_FUTURE). Page-granular, as the kernel is:
// the address must be page-aligned and the length is rounded up to whole pages, all inside memory the layer
// handed out. Lock failures caused by RLIMIT_MEMLOCK say so, with the limit and what to do.
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <string>

#include "errors.h"
#include "layer.h"

namespace mallocscope {

namespace {

int ProtFromMode(Napi::Env env, const Napi::Value& value) {
  if (!value.IsString()) ThrowType(env, kBadType, "the \"mode\" argument must be 'none', 'read' or 'read-write'");
  std::string mode = value.As<Napi::String>().Utf8Value();
  if (mode == "none") return PROT_NONE;
  if (mode == "read") return PROT_READ;
  if (mode == "read-write") return PROT_READ | PROT_WRITE;
  ThrowRange(env, kOutOfRange, "mode must be 'none', 'read' or 'read-write', not '" + mode + "'");
}

std::string Limit(rlim_t value) { return value == RLIM_INFINITY ? "unlimited" : std::to_string(value) + " bytes"; }

// VmLck from /proc/self/status: bytes this process has locked already.
std::string LockedNow() {
  FILE* status = std::fopen("/proc/self/status", "re");
  if (status == nullptr) return "unknown";
  char line[256];
  std::string found = "unknown";
  while (std::fgets(line, sizeof line, status) != nullptr) {
    if (std::strncmp(line, "VmLck:", 6) == 0) {
      unsigned long kib = 0;
      if (std::sscanf(line + 6, "%lu", &kib) == 1) found = std::to_string(kib * 1024) + " bytes";
    }
  }
  std::fclose(status);
  return found;
}

// The error of a failed mlock/mlockall, explaining RLIMIT_MEMLOCK when it is the likely cause.
Napi::Error LockError(Napi::Env env, int err, const char* syscall, const std::string& what) {
  struct rlimit limit {};
  getrlimit(RLIMIT_MEMLOCK, &limit);
  std::string detail = what;
  if (err == ENOMEM || err == EPERM || err == EAGAIN) {
    detail += "; RLIMIT_MEMLOCK is " + Limit(limit.rlim_cur) + " (hard " + Limit(limit.rlim_max) + "), locked already " + LockedNow() +
              ": raise the limit (ulimit -l, prlimit --memlock, limits.conf) or run with CAP_IPC_LOCK";
  }
  Napi::Error error = ErrnoError(env, err, syscall, detail);
  error.Value().Set("limit", limit.rlim_cur == RLIM_INFINITY ? Napi::Number::New(env, -1) : Napi::Number::New(env, static_cast<double>(limit.rlim_cur)));
  error.Value().Set("reason", Napi::String::New(env, err == ENOMEM || err == EPERM || err == EAGAIN ? "RLIMIT_MEMLOCK" : "other"));
  return error;
}

// Whether the process may lock memory beyond RLIMIT_MEMLOCK: CAP_IPC_LOCK (bit 14) in CapEff.
bool CanLockPastLimit() {
  FILE* status = std::fopen("/proc/self/status", "re");
  if (status == nullptr) return false;
  char line[256];
  unsigned long long caps = 0;
  while (std::fgets(line, sizeof line, status) != nullptr) {
    if (std::strncmp(line, "CapEff:", 7) == 0) caps = std::strtoull(line + 7, nullptr, 16);
  }
  std::fclose(status);
  return (caps >> 14) & 1;
}

// The env whose lockAll is in force (null when none): its exit paths undo it, and no other env's do.
std::atomic<napi_env> locked_by{nullptr};

}  // namespace

bool Layer::Restricted(uintptr_t start, uintptr_t end, int needed) const {
  auto it = protections_.upper_bound(start);
  if (it != protections_.begin()) --it;
  for (; it != protections_.end() && it->first < end; ++it) {
    if (it->second.first > start && (it->second.second & needed) != needed) return true;
  }
  return false;
}

void Layer::ForgetProtections(uintptr_t start, uintptr_t end) { EraseRange(protections_, start, end); }

void EraseRange(RangeMap& ranges, uintptr_t start, uintptr_t end) {
  // Split an entry that straddles either edge, then drop what lies inside.
  auto it = ranges.upper_bound(start);
  if (it != ranges.begin()) {
    auto before = std::prev(it);
    if (before->second.first > start) {
      auto [old_end, prot] = before->second;
      before->second.first = start;
      if (old_end > end) ranges[end] = {old_end, prot};
    }
  }
  it = ranges.lower_bound(start);
  while (it != ranges.end() && it->first < end) {
    auto [old_end, prot] = it->second;
    it = ranges.erase(it);
    if (old_end > end) ranges[end] = {old_end, prot};
  }
}

bool Overlaps(const RangeMap& ranges, uintptr_t start, uintptr_t end) {
  auto it = ranges.upper_bound(start);
  if (it != ranges.begin()) --it;
  for (; it != ranges.end() && it->first < end; ++it) {
    if (it->second.first > start) return true;
  }
  return false;
}

uint64_t BytesIn(const RangeMap& ranges, uintptr_t start, uintptr_t end) {
  uint64_t total = 0;
  auto it = ranges.upper_bound(start);
  if (it != ranges.begin()) --it;
  for (; it != ranges.end() && it->first < end; ++it) {
    uintptr_t from = std::max(it->first, start);
    uintptr_t to = std::min(it->second.first, end);
    if (to > from) total += to - from;
  }
  return total;
}

// protect(address, length, mode): mprotect to 'none', 'read' or 'read-write'.
Napi::Value Layer::Protect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t address = ArgPageMultiple(info, 0, "address", page_, false);
  uint64_t length = ArgUint(info, 1, "length");
  if (info.Length() < 3) ThrowType(env, kBadType, "the \"mode\" argument must be 'none', 'read' or 'read-write'");
  int prot = ProtFromMode(env, info[2]);
  CheckLive(env);
  uint64_t rounded = AlignUp(length, page_);
  RequireHandedOut(env, address, rounded, "protect");
  if (rounded == 0) return env.Undefined();
  if (mprotect(reinterpret_cast<void*>(address), rounded, prot) != 0) {
    ThrowErrno(env, errno, "mprotect", Hex(address) + "+" + std::to_string(rounded));
  }
  ForgetProtections(address, address + rounded);
  if (prot != (PROT_READ | PROT_WRITE)) protections_[address] = {address + rounded, prot};
  return env.Undefined();
}

// lock(address, length): mlock.
Napi::Value Layer::Lock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t address = ArgPageMultiple(info, 0, "address", page_, false);
  uint64_t length = ArgUint(info, 1, "length");
  CheckLive(env);
  uint64_t rounded = AlignUp(length, page_);
  RequireHandedOut(env, address, rounded, "lock");
  if (rounded != 0 && mlock(reinterpret_cast<void*>(address), rounded) != 0) {
    throw LockError(env, errno, "mlock", "locking " + std::to_string(rounded) + " bytes at " + Hex(address));
  }
  return env.Undefined();
}

// unlock(address, length): munlock.
Napi::Value Layer::Unlock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t address = ArgPageMultiple(info, 0, "address", page_, false);
  uint64_t length = ArgUint(info, 1, "length");
  CheckLive(env);
  uint64_t rounded = AlignUp(length, page_);
  RequireHandedOut(env, address, rounded, "unlock");
  if (rounded != 0 && munlock(reinterpret_cast<void*>(address), rounded) != 0) {
    ThrowErrno(env, errno, "munlock", Hex(address) + "+" + std::to_string(rounded));
  }
  return env.Undefined();
}

// lockAll(current, future): mlockall with MCL_CURRENT and/or MCL_FUTURE (the whole process, not one layer).
Napi::Value LockAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool current = info.Length() < 1 || info[0].ToBoolean().Value();
  bool future = info.Length() < 2 || info[1].ToBoolean().Value();
  int flags = (current ? MCL_CURRENT : 0) | (future ? MCL_FUTURE : 0);
  if (flags == 0) ThrowRange(env, kOutOfRange, "lockAll needs current, future or both");
  struct rlimit limit {};
  getrlimit(RLIMIT_MEMLOCK, &limit);
  if (future && limit.rlim_cur != RLIM_INFINITY && !CanLockPastLimit()) {
    // MCL_FUTURE also locks every mapping Node makes later (V8's heap growth, thread stacks, buffers), and
    // a locked mapping is charged to RLIMIT_MEMLOCK: once Node's growth reaches a finite limit, Node's own
    // mmap and mprotect calls fail and V8 aborts. No finite figure is sure to cover that growth.
    Napi::Error error = Napi::Error::New(
        env, "lockAll: MCL_FUTURE would lock every mapping Node itself makes from now on, and RLIMIT_MEMLOCK is " + Limit(limit.rlim_cur) +
                 ": once Node's own growth reaches it, Node's allocations fail and V8 aborts. MCL_FUTURE needs an unlimited RLIMIT_MEMLOCK "
                 "(ulimit -l unlimited, prlimit --memlock=unlimited) or CAP_IPC_LOCK; lockAll({ future: false }) locks what is mapped now");
    error.Value().Set("code", Napi::String::New(env, kMemlockFuture));
    error.Value().Set("reason", Napi::String::New(env, "RLIMIT_MEMLOCK"));
    error.Value().Set("limit", Napi::Number::New(env, static_cast<double>(limit.rlim_cur)));
    throw error;
  }
  if (mlockall(flags) != 0) {
    std::string which = current && future ? "MCL_CURRENT | MCL_FUTURE" : current ? "MCL_CURRENT" : "MCL_FUTURE";
    throw LockError(env, errno, "mlockall", "mlockall(" + which + ")");
  }
  locked_by = static_cast<napi_env>(env);
  return env.Undefined();
}

void UndoLockAll(napi_env env) {
  napi_env expected = env;
  if (locked_by.compare_exchange_strong(expected, nullptr)) munlockall();
}

// unlockAll(): munlockall.
Napi::Value UnlockAll(const Napi::CallbackInfo& info) {
  locked_by = nullptr;
  if (munlockall() != 0) ThrowErrno(info.Env(), errno, "munlockall");
  return info.Env().Undefined();
}

}  // namespace mallocscope
