// Real bytes for JavaScript: a view is an external ArrayBuffer over memory the layer handed out (no copy).
// Memory that goes away (munmap, a moving mremap, a shrinking break, release) detaches its views first, so
// a late access throws a TypeError in JavaScript instead of faulting. Also copy and zero, which the allocator
// core asks for (realloc's memcpy, calloc's memset).
//
// Node 20 runs an external buffer's finalizer on a later turn of the event loop, possibly after we detached
// the buffer and after the memory was reused. So the finalizer owns the View record and only frees it; the
// layer clears `view->layer` when it lets go, and the finalizer then leaves the layer alone.
#include <sys/mman.h>

#include <cstring>
#include <iterator>

#include "errors.h"
#include "layer.h"

namespace mallocscope {

namespace {

void FinalizeView(napi_env /*env*/, void* /*data*/, void* hint) {
  View* view = static_cast<View*>(hint);
  if (view->layer != nullptr) view->layer->Forget(view);
  delete view;
}

// The readable/writable check of copy and zero: PROT_* needed over a range.
void RequireAccess(Napi::Env env, bool restricted, const char* what, uintptr_t address, size_t length) {
  if (restricted) {
    ThrowCoded(env, kProtected, std::string(what) + ": " + Hex(address) + "+" + std::to_string(length) +
                                    " lies in pages protected against this access; make them read-write first");
  }
}

}  // namespace

void Layer::Forget(View* view) {
  auto range = views_.equal_range(view->address);
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second == view) {
      views_.erase(it);
      break;
    }
  }
  if (view->ref != nullptr) napi_delete_reference(env_, view->ref);
  view->ref = nullptr;
  view->layer = nullptr;
}

void Layer::DetachView(Napi::Env env, View* view) {
  napi_value buffer = nullptr;
  // The buffer may already be garbage (its finalizer still pending): then there is nothing to detach.
  if (view->ref != nullptr && napi_get_reference_value(env, view->ref, &buffer) == napi_ok && buffer != nullptr) {
    napi_detach_arraybuffer(env, buffer);
  }
  Forget(view);
}

void Layer::InvalidateViews(Napi::Env env, uintptr_t start, uintptr_t end) {
  if (views_.empty() || start >= end) return;
  // Views never straddle regions, so any view overlapping [start, end) starts inside its region: scan from
  // the region's start (the heap's for heap memory) up to `end`.
  uintptr_t from = start;
  if (start >= base_ && start < base_ + reserved_) {
    from = base_;
  } else {
    auto mapping = mappings_.upper_bound(start);
    if (mapping != mappings_.begin()) from = std::prev(mapping)->first;
  }
  auto it = views_.lower_bound(from);
  while (it != views_.end() && it->first < end) {
    View* view = it->second;
    ++it;
    if (view->address + view->length > start || (view->length == 0 && view->address >= start)) DetachView(env, view);
  }
}

// bytes(address, length): a Uint8Array over the real memory.
Napi::Value Layer::Bytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t address = ArgUint(info, 0, "address");
  uint64_t length = ArgUint(info, 1, "length");
  CheckLive(env);
  RequireHandedOut(env, address, length, "bytes");
  // Not attached to the layer until the buffer exists: when creating it fails, Node has already run (or will
  // run) the finalizer, which then frees the record and nothing else.
  View* view = new View{nullptr, address, length, nullptr};
  napi_value buffer;
  if (napi_create_external_arraybuffer(env, reinterpret_cast<void*>(address), length, FinalizeView, view, &buffer) != napi_ok) {
    // The record is the finalizer's now. Node's own error (e.g. ERR_BUFFER_TOO_LARGE) is pending, if any.
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) throw Napi::Error::New(env);
    ThrowRange(env, kOutOfRange, "bytes: Node could not make an ArrayBuffer of " + std::to_string(length) + " bytes");
  }
  if (napi_create_reference(env, buffer, 0, &view->ref) != napi_ok) {
    throw Napi::Error::New(env, "bytes: could not reference the ArrayBuffer");
  }
  view->layer = this;
  views_.emplace(address, view);
  return Napi::Uint8Array::New(env, length, Napi::ArrayBuffer(env, buffer), 0);
}

// detach(view): detaches a Uint8Array this layer made (a freed block's view). Anything else is refused.
Napi::Value Layer::Detach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) ThrowType(env, kBadType, "detach takes a Uint8Array that bytes() returned");
  Napi::ArrayBuffer buffer = info[0].As<Napi::TypedArray>().ArrayBuffer();
  if (buffer.IsDetached()) return Napi::Boolean::New(env, false);
  auto range = views_.equal_range(reinterpret_cast<uintptr_t>(buffer.Data()));
  for (auto it = range.first; it != range.second; ++it) {
    napi_value value = nullptr;
    if (napi_get_reference_value(env, it->second->ref, &value) == napi_ok && value != nullptr && buffer.StrictEquals(Napi::Value(env, value))) {
      DetachView(env, it->second);
      return Napi::Boolean::New(env, true);
    }
  }
  ThrowRange(env, kNotMapped, "detach: this Uint8Array is not a view this native system made");
}

// One MADV_POPULATE_WRITE (Linux 5.14) for the pages a copy or zero is about to write: here a page's first
// write costs 1.5 to 2 times the CPU of the kernel filling the same pages in one go, and the pages written
// are the same ones. Private memory only (a backing's page may be unwritable, the disk full: there the write's
// own fault goes to the SIGBUS guard, as before), and only for more than one page; an older kernel's EINVAL,
// or any failure, leaves the faults to the write.
void Layer::Prefault(uintptr_t address, size_t length) const {
  if (backed() || length <= page_) return;
  uintptr_t start = address & ~(static_cast<uintptr_t>(page_) - 1);
  uintptr_t end = (address + length + page_ - 1) & ~(static_cast<uintptr_t>(page_) - 1);
#ifdef MADV_POPULATE_WRITE  // headers older than Linux 5.14 lack it: the write faults its pages in, as before
  madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_WRITE);
#else
  (void)start;
  (void)end;
#endif
}

// copy(to, from, length): memmove between ranges the layer handed out (realloc moving a block).
Napi::Value Layer::Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t to = ArgUint(info, 0, "to");
  uint64_t from = ArgUint(info, 1, "from");
  uint64_t length = ArgUint(info, 2, "length");
  CheckLive(env);
  RequireHandedOut(env, to, length, "copy (destination)");
  RequireHandedOut(env, from, length, "copy (source)");
  RequireAccess(env, Restricted(to, to + length, PROT_WRITE), "copy (destination)", to, length);
  RequireAccess(env, Restricted(from, from + length, PROT_READ), "copy (source)", from, length);
  Prefault(to, length);
  std::memmove(reinterpret_cast<void*>(to), reinterpret_cast<const void*>(from), length);
  return env.Undefined();
}

// zero(address, length): memset to 0 (calloc of recycled heap memory).
Napi::Value Layer::Zero(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t address = ArgUint(info, 0, "address");
  uint64_t length = ArgUint(info, 1, "length");
  CheckLive(env);
  RequireHandedOut(env, address, length, "zero");
  RequireAccess(env, Restricted(address, address + length, PROT_WRITE), "zero", address, length);
  Prefault(address, length);
  std::memset(reinterpret_cast<void*>(address), 0, length);
  return env.Undefined();
}

}  // namespace mallocscope
