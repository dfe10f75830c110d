// The baselines of bench/native.ts: glibc's own malloc+free of one size, in the same process as the native
// backend it is compared with. glibcMallocFree loops `count` times in C++ and times itself, so no N-API
// crossing is counted; glibcMallocFreeOnce is one pair per call, timed from JavaScript, so that the cost of
// crossing N-API once per call (what a JavaScript caller of the native backend could at best pay) shows.
#include <malloc.h>
#include <time.h>

#include <cstdlib>

#include "errors.h"
#include "layer.h"

namespace mallocscope {

// glibcMallocFree(size, count): nanoseconds for `count` malloc(size)+free pairs.
Napi::Value GlibcMallocFree(const Napi::CallbackInfo& info) {
  uint64_t size = ArgUint(info, 0, "size");
  uint64_t count = ArgUint(info, 1, "count");
  timespec begin{}, end{};
  clock_gettime(CLOCK_MONOTONIC, &begin);
  for (uint64_t i = 0; i < count; i++) {
    void* block = std::malloc(size);
    // The pointer escapes into an empty asm: the compiler may not fold the pair away.
    asm volatile("" : : "r"(block) : "memory");
    std::free(block);
  }
  clock_gettime(CLOCK_MONOTONIC, &end);
  double ns = static_cast<double>(end.tv_sec - begin.tv_sec) * 1e9 + static_cast<double>(end.tv_nsec - begin.tv_nsec);
  return Napi::Number::New(info.Env(), ns);
}

// glibcMallocFreeOnce(size): one malloc(size)+free pair; returns undefined (nothing to allocate on the way
// back). The size is validated as glibcMallocFree's is.
Napi::Value GlibcMallocFreeOnce(const Napi::CallbackInfo& info) {
  uint64_t size = ArgUint(info, 0, "size");
  void* block = std::malloc(size);
  asm volatile("" : : "r"(block) : "memory");
  std::free(block);
  return info.Env().Undefined();
}

}  // namespace mallocscope
