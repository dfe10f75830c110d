// Thread arenas' heaps, as glibc's new_heap and grow_heap ask for them: reserve() is mmap(hint, length,
// PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE) with the hint as a plain hint (no MAP_FIXED: the
// kernel places it elsewhere when the range is taken, and the caller checks the alignment), and mprotect()
// makes pages of a reservation read-write. munmap of a part of a reservation is mappings.cc's.
//
// MAP_NORESERVE as glibc's: the pages made writable later are then not charged against the overcommit limit
// (unlike the emulated break's, reservation.cc), in the real glibc (the oracle) as here.
#include <sys/mman.h>

#include <cerrno>

#include "errors.h"
#include "layer.h"

namespace mallocscope {

namespace {

// x86-64 user space with 4-level page tables. A hint above it would, on a 5-level kernel, ask for addresses
// that a double cannot hold exactly; the kernel never goes there without such a hint.
constexpr uint64_t kUserSpace = uint64_t(1) << 47;

}  // namespace

// reserve(length, hint): the address of a new PROT_NONE reservation of `length` bytes, at `hint` when that
// range is free (0: no hint), or -1 when the kernel refuses (ENOMEM).
Napi::Value Layer::Reserve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t length = ArgPageMultiple(info, 0, "length", page_, true);
  uint64_t hint = info.Length() > 1 && !info[1].IsUndefined() ? ArgPageMultiple(info, 1, "hint", page_, false) : 0;
  CheckLive(env);
  if (length > kUserSpace) return Napi::Number::New(env, -1);
  if (hint != 0 && hint + length > kUserSpace) {
    ThrowRange(env, kOutOfRange, "reserve: the hint " + Hex(hint) + " + " + std::to_string(length) + " bytes passes the end of user space (2^47)");
  }
  void* start = mmap(reinterpret_cast<void*>(hint), length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (start == MAP_FAILED) {
    if (errno == ENOMEM || errno == EAGAIN) return Napi::Number::New(env, -1);
    ThrowErrno(env, errno, "mmap", "reserving " + std::to_string(length) + " bytes for a thread arena's heap");
  }
  uintptr_t address = reinterpret_cast<uintptr_t>(start);
  mappings_[address] = Mapping{length, 0, 0, true};
  uncommitted_[address] = {address + length, PROT_NONE};
  return Napi::Number::New(env, static_cast<double>(address));
}

// mprotect(address, length): PROT_READ | PROT_WRITE over whole pages inside one reservation (grow_heap).
// true, or false when the kernel refuses (ENOMEM: too many mappings, or no memory for the page tables).
Napi::Value Layer::Mprotect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t address = ArgPageMultiple(info, 0, "address", page_, false);
  uint64_t length = ArgPageMultiple(info, 1, "length", page_, true);
  CheckLive(env);
  auto it = Containing(address, length);
  if (it == mappings_.end() || !it->second.reservation) {
    ThrowRange(env, kNotReserved, "mprotect: " + Hex(address) + "+" + std::to_string(length) +
                                      " is not inside one reservation this native system made (reserve)");
  }
  if (mprotect(reinterpret_cast<void*>(address), length, PROT_READ | PROT_WRITE) != 0) {
    if (errno == ENOMEM || errno == EAGAIN) return Napi::Boolean::New(env, false);
    ThrowErrno(env, errno, "mprotect", Hex(address) + "+" + std::to_string(length));
  }
  EraseRange(uncommitted_, address, address + length);
  // Pages protect() had restricted are read-write again.
  ForgetProtections(address, address + length);
  ReportExternal(env);
  return Napi::Boolean::New(env, true);
}

}  // namespace mallocscope
