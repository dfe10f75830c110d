// The mallocscope addon: the few facts and calls that only native code can reach. It registers the native
// system layer (layer.h: the emulated break, mappings, views, protection, locking, resident memory), the
// process-wide mlockall, the glibc baselines of bench/native.ts, runSync (posix_spawn, spawn.cc), the reader
// of heap backings (HeapImage, image.cc) and setErrorClass (the class of mallocscope's own errors).
#include <napi.h>
#include <gnu/libc-version.h>
#include <unistd.h>

#include "errors.h"
#include "layer.h"

namespace {

// The version string of the glibc this process runs on, e.g. "2.36".
Napi::Value GlibcVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), gnu_get_libc_version());
}

// The kernel's page size: the unit of brk growth, trimming and mmap lengths.
Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
}

// At the env's teardown (the end of the main thread or of a worker), an mlockall still in force is undone:
// with MCL_FUTURE, V8's own mprotect calls while it shuts down would otherwise fail and abort the process.
void UndoLockAllAtTeardown(void* env) { mallocscope::UndoLockAll(static_cast<napi_env>(env)); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  napi_add_env_cleanup_hook(env, UndoLockAllAtTeardown, static_cast<napi_env>(env));
  exports.Set("glibcVersion", Napi::Function::New(env, GlibcVersion, "glibcVersion"));
  exports.Set("pageSize", Napi::Function::New(env, PageSize, "pageSize"));
  exports.Set("Layer", mallocscope::Layer::Define(env));
  exports.Set("lockAll", Napi::Function::New(env, mallocscope::LockAll, "lockAll"));
  exports.Set("unlockAll", Napi::Function::New(env, mallocscope::UnlockAll, "unlockAll"));
  exports.Set("glibcMallocFree", Napi::Function::New(env, mallocscope::GlibcMallocFree, "glibcMallocFree"));
  exports.Set("glibcMallocFreeOnce", Napi::Function::New(env, mallocscope::GlibcMallocFreeOnce, "glibcMallocFreeOnce"));
  exports.Set("runSync", Napi::Function::New(env, mallocscope::RunSync, "runSync"));
  exports.Set("HeapImage", mallocscope::DefineHeapImage(env));
  exports.Set("setErrorClass", Napi::Function::New(env, mallocscope::SetErrorClass, "setErrorClass"));
  return exports;
}

}  // namespace

NODE_API_MODULE(mallocscope, Init)
