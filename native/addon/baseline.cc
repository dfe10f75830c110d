// The baseline of bench/native.ts: glibc's own malloc+free of one size, `count` times, timed in C++ so that
// no N-API crossing is counted, in the same process as the native backend it is compared with.
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

}  // namespace mallocscope
