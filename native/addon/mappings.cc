// Large blocks' own mappings: anonymous private mmap, munmap on free (also of a part of a mapping: new_heap
// cuts its reservation to an aligned heap), mremap (MREMAP_MAYMOVE) on realloc, and madvise(MADV_DONTNEED)
// for malloc_trim and heap_trim. Every mapping handed out is kept in a registry, so that munmap,
// mremap and madvise of anything else are refused before the system call. With guard pages, each mapping
// gets a PROT_NONE page before and after it: an overrun of the block then faults instead of corrupting.
#include <sys/mman.h>

#include <cerrno>

#include "errors.h"
#include "layer.h"

namespace mallocscope {

namespace {

// Failures a caller expects (glibc's mmap and mremap return MAP_FAILED and malloc returns NULL).
bool OutOfMemory(int err) { return err == ENOMEM || err == EAGAIN; }

}  // namespace

std::map<uintptr_t, Mapping>::iterator Layer::RequireMapping(Napi::Env env, uintptr_t address, size_t length, const char* what) {
  auto it = mappings_.find(address);
  if (it == mappings_.end() || it->second.length != length) {
    ThrowRange(env, kNotMapped, std::string(what) + ": " + Hex(address) + "+" + std::to_string(length) +
                                    " is not a mapping this native system handed out");
  }
  return it;
}

std::map<uintptr_t, Mapping>::iterator Layer::Containing(uintptr_t address, size_t length) {
  if (address + length < address) return mappings_.end();
  auto it = mappings_.upper_bound(address);
  if (it == mappings_.begin()) return mappings_.end();
  --it;
  return address + length <= it->first + it->second.length ? it : mappings_.end();
}

// mmap(length): the address of a fresh read-write mapping, or -1 (ENOMEM).
Napi::Value Layer::Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t length = ArgPageMultiple(info, 0, "length", page_, true);
  CheckLive(env);
  size_t guard = guard_pages_ ? page_ : 0;
  if (length > (uint64_t(1) << 47)) return Napi::Number::New(env, -1);  // larger than user space
  // With guards: all PROT_NONE first (not charged), then the inside read-write (charged, as a plain mmap).
  int prot = guard ? PROT_NONE : PROT_READ | PROT_WRITE;
  void* outer = mmap(nullptr, length + 2 * guard, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (outer == MAP_FAILED) {
    if (OutOfMemory(errno)) return Napi::Number::New(env, -1);
    ThrowErrno(env, errno, "mmap", std::to_string(length) + " bytes");
  }
  uintptr_t address = reinterpret_cast<uintptr_t>(outer) + guard;
  if (guard && mprotect(Ptr(address), length, PROT_READ | PROT_WRITE) != 0) {
    int err = errno;
    munmap(outer, length + 2 * guard);
    if (OutOfMemory(err)) return Napi::Number::New(env, -1);
    ThrowErrno(env, err, "mprotect", "making a guarded mapping read-write");
  }
  mappings_[address] = Mapping{length, guard, guard};
  ReportExternal(env);
  return Napi::Number::New(env, static_cast<double>(address));
}

// munmap(address, length): a whole mapping mmap, mremap or reserve returned, or page-aligned part of one
// (new_heap keeps the aligned 64 MiB of a larger reservation). What is left of the mapping stays in the
// registry as one or two records; views over the unmapped part are detached first. A guarded mapping goes
// only whole: a part of it would leave a block without its guard.
Napi::Value Layer::Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t address = ArgPageMultiple(info, 0, "address", page_, false);
  uint64_t length = ArgPageMultiple(info, 1, "length", page_, true);
  CheckLive(env);
  auto it = Containing(address, length);
  if (it == mappings_.end()) {
    ThrowRange(env, kNotMapped, "munmap: " + Hex(address) + "+" + std::to_string(length) +
                                    " is not a mapping, or a part of one, that this native system handed out");
  }
  uintptr_t start = it->first;
  Mapping mapping = it->second;
  bool whole = start == address && mapping.length == length;
  if (!whole && (mapping.front_guard != 0 || mapping.back_guard != 0)) {
    ThrowRange(env, kGuardedPart, "munmap: " + Hex(address) + "+" + std::to_string(length) + " is a part of the guarded mapping " + Hex(start) +
                                      "+" + std::to_string(mapping.length) + "; a guarded mapping is unmapped whole");
  }
  InvalidateViews(env, address, address + length);
  uintptr_t from = whole ? address - mapping.front_guard : address;
  size_t span = whole ? mapping.front_guard + length + mapping.back_guard : length;
  if (munmap(Ptr(from), span) != 0) ThrowErrno(env, errno, "munmap", Hex(address) + "+" + std::to_string(length));
  ForgetProtections(address, address + length);
  EraseRange(uncommitted_, address, address + length);
  uintptr_t end = start + mapping.length;
  mappings_.erase(it);
  if (start < address) mappings_[start] = Mapping{address - start, 0, 0, mapping.reservation};
  if (address + length < end) mappings_[address + length] = Mapping{end - address - length, 0, 0, mapping.reservation};
  ReportExternal(env);
  return env.Undefined();
}

// mremap(address, oldLength, newLength) with MREMAP_MAYMOVE: the new address, or -1 (ENOMEM; the old mapping
// then stays as it was). Views over the old mapping are detached when it moves, and views past a shrunk
// end are detached when it shrinks in place.
Napi::Value Layer::Mremap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t address = ArgPageMultiple(info, 0, "address", page_, false);
  uint64_t old_length = ArgPageMultiple(info, 1, "oldLength", page_, true);
  uint64_t new_length = ArgPageMultiple(info, 2, "newLength", page_, true);
  CheckLive(env);
  auto it = RequireMapping(env, address, old_length, "mremap");
  // glibc never moves a thread arena's heap; its PROT_NONE pages would have to move with it.
  if (it->second.reservation) ThrowRange(env, kNotMapped, "mremap: " + Hex(address) + " is a reservation (reserve), not a mapping mmap returned");
  if (Restricted(address, address + old_length, PROT_READ | PROT_WRITE)) {
    ThrowCoded(env, kProtected, "mremap: " + Hex(address) + " has protected pages; make them read-write first");
  }
  if (new_length > (uint64_t(1) << 47)) return Napi::Number::New(env, -1);
  Mapping mapping = it->second;
  uintptr_t result;
  if (!guard_pages_) {
    void* moved = mremap(Ptr(address), old_length, new_length, MREMAP_MAYMOVE);
    if (moved == MAP_FAILED) {
      if (OutOfMemory(errno)) return Napi::Number::New(env, -1);
      ThrowErrno(env, errno, "mremap", Hex(address) + "+" + std::to_string(old_length) + " to " + std::to_string(new_length));
    }
    result = reinterpret_cast<uintptr_t>(moved);
  } else if (new_length < old_length) {
    // Shrink in place; the pages given up become part of the trailing guard.
    if (mremap(Ptr(address), old_length, new_length, 0) == MAP_FAILED) {
      ThrowErrno(env, errno, "mremap", "shrinking a guarded mapping");
    }
    void* hole = mmap(Ptr(address + new_length), old_length - new_length, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (hole == MAP_FAILED) ThrowErrno(env, errno, "mmap", "extending a guard page");
    mapping.back_guard += old_length - new_length;
    result = address;
  } else {
    // Grow into a fresh guarded range: reserve it, move the pages in with MREMAP_FIXED, drop the old guards.
    size_t guard = page_;
    void* outer = mmap(nullptr, new_length + 2 * guard, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (outer == MAP_FAILED) {
      if (OutOfMemory(errno)) return Napi::Number::New(env, -1);
      ThrowErrno(env, errno, "mmap", "reserving a guarded range for mremap");
    }
    uintptr_t target = reinterpret_cast<uintptr_t>(outer) + guard;
    if (mremap(Ptr(address), old_length, new_length, MREMAP_MAYMOVE | MREMAP_FIXED, Ptr(target)) == MAP_FAILED) {
      int err = errno;
      munmap(outer, new_length + 2 * guard);
      if (OutOfMemory(err)) return Napi::Number::New(env, -1);
      ThrowErrno(env, err, "mremap", "moving a guarded mapping");
    }
    munmap(Ptr(address - mapping.front_guard), mapping.front_guard);
    munmap(Ptr(address + old_length), mapping.back_guard);
    mapping = Mapping{new_length, guard, guard};
    result = target;
  }
  if (result != address) {
    InvalidateViews(env, address, address + old_length);
    ForgetProtections(address, address + old_length);
    mappings_.erase(it);
  } else if (new_length < old_length) {
    InvalidateViews(env, address + new_length, address + old_length);
  }
  mapping.length = new_length;
  mappings_[result] = mapping;
  ReportExternal(env);
  return Napi::Number::New(env, static_cast<double>(result));
}

// madvise(address, length): MADV_DONTNEED over whole pages inside the heap or one mapping (malloc_trim).
Napi::Value Layer::Madvise(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t address = ArgPageMultiple(info, 0, "address", page_, false);
  uint64_t length = ArgPageMultiple(info, 1, "length", page_, false);
  CheckLive(env);
  RequireHandedOut(env, address, length, "madvise");
  if (length == 0) return env.Undefined();
  if (backed() && address >= base_ && address < base_ + reserved_) {
    TrimBacking(env, address, address + length);
    return env.Undefined();
  }
  // glibc ignores madvise's result; EINVAL here means locked pages (mlock), which keep their contents.
  if (madvise(Ptr(address), length, MADV_DONTNEED) != 0 && errno != EINVAL) {
    ThrowErrno(env, errno, "madvise", Hex(address) + "+" + std::to_string(length));
  }
  return env.Undefined();
}

// regions(): what the layer holds now, for tests and reports: { heap: [start, end], brk, mappings: [[address,
// length, frontGuard, backGuard], ...], reservations: [[address, length, committed], ...], released }.
Napi::Value Layer::Regions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  Napi::Array heap = Napi::Array::New(env, 2);
  heap.Set(0u, Napi::Number::New(env, static_cast<double>(base_)));
  heap.Set(1u, Napi::Number::New(env, static_cast<double>(committed_)));
  out.Set("heap", heap);
  out.Set("brk", Napi::Number::New(env, static_cast<double>(brk_)));
  Napi::Array list = Napi::Array::New(env);
  Napi::Array reservations = Napi::Array::New(env);
  uint32_t i = 0;
  uint32_t r = 0;
  for (auto& [address, mapping] : mappings_) {
    if (mapping.reservation) {
      Napi::Array row = Napi::Array::New(env, 3);
      row.Set(0u, Napi::Number::New(env, static_cast<double>(address)));
      row.Set(1u, Napi::Number::New(env, static_cast<double>(mapping.length)));
      row.Set(2u, Napi::Number::New(env, static_cast<double>(mapping.length - BytesIn(uncommitted_, address, address + mapping.length))));
      reservations.Set(r++, row);
      continue;
    }
    Napi::Array row = Napi::Array::New(env, 4);
    row.Set(0u, Napi::Number::New(env, static_cast<double>(address)));
    row.Set(1u, Napi::Number::New(env, static_cast<double>(mapping.length)));
    row.Set(2u, Napi::Number::New(env, static_cast<double>(mapping.front_guard)));
    row.Set(3u, Napi::Number::New(env, static_cast<double>(mapping.back_guard)));
    list.Set(i++, row);
  }
  out.Set("mappings", list);
  out.Set("reservations", reservations);
  out.Set("released", Napi::Boolean::New(env, released_));
  return out;
}

}  // namespace mallocscope
