// The mallocscope addon: the few facts and calls that only native code can reach.
// Grows into the native system layer (issue 4); for now it reports the machine's glibc and page size.
#include <napi.h>
#include <gnu/libc-version.h>
#include <unistd.h>

namespace {

// The version string of the glibc this process runs on, e.g. "2.36".
Napi::Value GlibcVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), gnu_get_libc_version());
}

// The kernel's page size: the unit of brk growth, trimming and mmap lengths.
Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("glibcVersion", Napi::Function::New(env, GlibcVersion, "glibcVersion"));
  exports.Set("pageSize", Napi::Function::New(env, PageSize, "pageSize"));
  return exports;
}

}  // namespace

NODE_API_MODULE(mallocscope, Init)
