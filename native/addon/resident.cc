// Real resident memory: how many of the layer's pages are in RAM now (mincore), for the emulated heap (its
// committed part, [start, break rounded up)), for the mappings (without their guard pages) and for the thread
// arenas' heaps (reservations: their PROT_NONE pages are never resident). This is the real figure `replay --backend native` prints beside the model's heap and mmapped bytes.
#include <sys/mman.h>

#include <cerrno>
#include <vector>

#include "errors.h"
#include "layer.h"

namespace mallocscope {

namespace {

// Resident bytes in [start, start + length), both page-aligned; mincore works in bounded slices so that a
// large heap does not need a large vector.
uint64_t ResidentBytes(Napi::Env env, uintptr_t start, size_t length, size_t page) {
  constexpr size_t kSlicePages = 1 << 16;
  std::vector<unsigned char> pages(kSlicePages);
  uint64_t resident = 0;
  for (size_t done = 0; done < length;) {
    size_t slice = std::min(length - done, kSlicePages * page);
    if (mincore(reinterpret_cast<void*>(start + done), slice, pages.data()) != 0) ThrowErrno(env, errno, "mincore");
    for (size_t i = 0; i < slice / page; i++) resident += (pages[i] & 1) ? page : 0;
    done += slice;
  }
  return resident;
}

}  // namespace

// resident(): { heap, mmapped, heapCommitted, mapped, threadHeaps, threadHeapsCommitted } in bytes.
Napi::Value Layer::Resident(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckLive(env);
  uint64_t heap = ResidentBytes(env, base_, committed_ - base_, page_);
  uint64_t mmapped = 0;
  uint64_t mapped = 0;
  uint64_t thread_heaps = 0;
  uint64_t thread_heaps_committed = 0;
  for (auto& [address, mapping] : mappings_) {
    uint64_t resident = ResidentBytes(env, address, mapping.length, page_);
    if (mapping.reservation) {
      thread_heaps += resident;
      thread_heaps_committed += mapping.length - BytesIn(uncommitted_, address, address + mapping.length);
    } else {
      mmapped += resident;
      mapped += mapping.length;
    }
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("heap", Napi::Number::New(env, static_cast<double>(heap)));
  out.Set("mmapped", Napi::Number::New(env, static_cast<double>(mmapped)));
  out.Set("heapCommitted", Napi::Number::New(env, static_cast<double>(committed_ - base_)));
  out.Set("mapped", Napi::Number::New(env, static_cast<double>(mapped)));
  out.Set("threadHeaps", Napi::Number::New(env, static_cast<double>(thread_heaps)));
  out.Set("threadHeapsCommitted", Napi::Number::New(env, static_cast<double>(thread_heaps_committed)));
  return out;
}

}  // namespace mallocscope
