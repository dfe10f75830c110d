// The reader of a heap backing (HeapImage): maps a memfd or a file read-only (MAP_SHARED, PROT_READ) at any
// address and hands JavaScript a Uint8Array over it, in another process or a worker thread while the owner
// writes, or later from a file on disk. refresh() maps more when the heap grew; close() unmaps at once.
//
// It never maps a page past the file's end (that page would fault): the length asked for is checked against
// fstat first. A file that shrinks later (someone truncates it) would make the pages past its new end fault
// with SIGBUS when read; the SIGBUS guard (sigbus.h) maps zeros there instead and counts the fault, and the
// next refresh() reports HEAP_IMAGE_TRUNCATED. A sealed memfd (backing 'shared') cannot shrink at all.
//
// The mapping is owned jointly by the reader and by its ArrayBuffer's finalizer (which Node runs on a later
// turn of the event loop): whichever lets go last unmaps it, unless close() or a new mapping did it first
// (detaching the buffer, so that JavaScript can no longer reach the memory).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "errors.h"
#include "layer.h"
#include "sigbus.h"

namespace mallocscope {

namespace {

// One mapping and the buffer over it.
struct Region {
  void* address;  // null once unmapped
  size_t mapped;  // bytes mapped: the length rounded up to a page
  int slot;       // its SIGBUS guard
  int owners;     // the reader while it holds it, and the buffer until its finalizer ran
  napi_ref buffer;  // weak: the ArrayBuffer to detach while it lives
};

void Unmap(Region* region) {
  if (region->address == nullptr) return;
  // Unguarded first: the handler must never map over memory that is gone.
  UnguardRange(region->slot);
  munmap(region->address, region->mapped);
  region->address = nullptr;
}

void LetGo(napi_env env, Region* region) {
  if (--region->owners > 0) return;
  Unmap(region);
  if (region->buffer != nullptr) napi_delete_reference(env, region->buffer);
  delete region;
}

void FinalizeBuffer(napi_env env, void* /*data*/, void* hint) { LetGo(env, static_cast<Region*>(hint)); }

class HeapImage : public Napi::ObjectWrap<HeapImage> {
 public:
  // new HeapImage(pathOrFd): opens it (a path, or a copy of the descriptor) without mapping anything yet.
  explicit HeapImage(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HeapImage>(info) {
    Napi::Env env = info.Env();
    env_ = env;
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    if (info.Length() > 0 && info[0].IsString()) {
      name_ = info[0].As<Napi::String>().Utf8Value();
      fd_ = open(name_.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
      if (fd_ < 0) ThrowMallocscope(env, kImageOpen, name_ + ": cannot open the heap image", errno, "open");
    } else {
      int source = static_cast<int>(ArgUint(info, 0, "fd"));
      name_ = "fd " + std::to_string(source);
      // A copy: closing the reader must not close the caller's descriptor.
      fd_ = fcntl(source, F_DUPFD_CLOEXEC, 0);
      if (fd_ < 0) ThrowMallocscope(env, kImageOpen, name_ + ": cannot use this descriptor for a heap image", errno, "fcntl");
    }
    struct stat st {};
    if (fstat(fd_, &st) != 0) Fail(env, kImageOpen, ": cannot stat the heap image", errno, "fstat");
    if (S_ISDIR(st.st_mode)) Fail(env, kImageOpen, ": is a directory, not a heap image");
    if (!S_ISREG(st.st_mode)) Fail(env, kImageOpen, ": a heap image is a regular file or a memfd, and this is neither");
    // Node's largest ArrayBuffer (buffer.constants.MAX_LENGTH), which JavaScript passes: no mapping is made
    // for a view Node would refuse.
    if (info.Length() > 1 && info[1].IsNumber()) max_view_ = static_cast<uint64_t>(info[1].As<Napi::Number>().DoubleValue());
    int seals = fcntl(fd_, F_GET_SEALS);
    sealed_ = seals >= 0 && (seals & F_SEAL_SHRINK) != 0;
  }

  ~HeapImage() override {
    if (region_ != nullptr) {
      // Collected: the buffer may live on, and keeps the mapping until its own finalizer runs.
      LetGo(env_, region_);
      region_ = nullptr;
    }
    if (fd_ >= 0) close(fd_);
  }

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "HeapImage",
                       {
                           InstanceMethod<&HeapImage::Size>("size"),
                           InstanceMethod<&HeapImage::Map>("map"),
                           InstanceMethod<&HeapImage::Check>("check"),
                           InstanceMethod<&HeapImage::Close>("close"),
                           InstanceMethod<&HeapImage::Sealed>("sealed"),
                       });
  }

 private:
  // Closes what the constructor opened before throwing out of it (no object comes out to close it later).
  [[noreturn]] void Fail(Napi::Env env, const char* code, const std::string& what, int err = 0, const char* call = nullptr) {
    close(fd_);
    fd_ = -1;
    ThrowMallocscope(env, code, name_ + what, err, call);
  }

  void RequireOpen(Napi::Env env) const {
    if (fd_ < 0) ThrowMallocscope(env, kImageClosed, name_ + ": this heap image was closed; open it again");
  }

  uint64_t FileSize(Napi::Env env) const {
    struct stat st {};
    if (fstat(fd_, &st) != 0) ThrowMallocscope(env, kImageOpen, name_ + ": cannot stat the heap image", errno, "fstat");
    return static_cast<uint64_t>(st.st_size);
  }

  // size(): the file's size now (fstat).
  Napi::Value Size(const Napi::CallbackInfo& info) {
    RequireOpen(info.Env());
    return Napi::Number::New(info.Env(), static_cast<double>(FileSize(info.Env())));
  }

  Napi::Value Sealed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), sealed_); }

  // check(): throws HEAP_IMAGE_TRUNCATED when the file shrank below what is mapped, or a read past its end
  // was caught; otherwise returns the file's size.
  Napi::Value Check(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireOpen(env);
    uint64_t size = FileSize(env);
    uint32_t faults = region_ != nullptr ? GuardFaults(region_->slot) : 0;
    if (size < length_ || faults != 0) truncated_ = true;
    if (region_ != nullptr) RequireGuard(env);
    if (truncated_) {
      ThrowMallocscope(env, kImageTruncated,
                       name_ + ": the file shrank under this reader (to " + std::to_string(size) + " bytes; " + std::to_string(length_) +
                           " were mapped); past its end the view reads zeros. close() it and open it again");
    }
    return Napi::Number::New(env, static_cast<double>(size));
  }

  // map(length): a new Uint8Array over the file's first `length` bytes; the previous one is detached and
  // unmapped. HEAP_IMAGE_SHORT when the file has fewer bytes.
  Napi::Value Map(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t length = ArgUint(info, 0, "length");
    RequireOpen(env);
    uint64_t size = FileSize(env);
    if (length > size) {
      ThrowMallocscope(env, kImageShort, name_ + ": " + std::to_string(length) + " bytes asked for, but the file holds " + std::to_string(size));
    }
    if (length > max_view_) {
      ThrowMallocscope(env, kImageTooLarge,
                       name_ + ": " + std::to_string(length) + " bytes is more than Node's largest ArrayBuffer (" + std::to_string(max_view_) +
                           " bytes); pass a length");
    }
    Region* next = nullptr;
    Napi::ArrayBuffer buffer;
    if (length == 0) {
      buffer = Napi::ArrayBuffer::New(env, 0);
    } else {
      size_t mapped = AlignUp(length, page_);
      void* address = mmap(nullptr, mapped, PROT_READ, MAP_SHARED, fd_, 0);
      if (address == MAP_FAILED) ThrowMallocscope(env, kImageOpen, name_ + ": cannot map " + std::to_string(mapped) + " bytes of it", errno, "mmap");
      int slot = GuardRange(reinterpret_cast<uintptr_t>(address), reinterpret_cast<uintptr_t>(address) + mapped, PROT_READ);
      if (slot < 0) {
        munmap(address, mapped);
        ThrowMallocscope(env, kImageOpen, name_ + ": too many heap backings and heap images alive at once (1024): close some");
      }
      next = new Region{address, mapped, slot, 2, nullptr};
      napi_value value;
      if (napi_create_external_arraybuffer(env, address, length, FinalizeBuffer, next, &value) != napi_ok) {
        // The finalizer has run or will run and drops its share; ours goes here.
        LetGo(env, next);
        bool pending = false;
        if (napi_is_exception_pending(env, &pending) == napi_ok && pending) throw Napi::Error::New(env);
        ThrowMallocscope(env, kImageOpen, name_ + ": Node could not make an ArrayBuffer of " + std::to_string(length) + " bytes");
      }
      napi_create_reference(env, value, 0, &next->buffer);
      buffer = Napi::ArrayBuffer(env, value);
    }
    // The view is made before the old mapping goes: should Node refuse it, the image stays as it was (the new
    // mapping is unmapped and its buffer detached; its finalizer lets go of the rest).
    napi_value view;
    if (napi_create_typedarray(env, napi_uint8_array, length, buffer, 0, &view) != napi_ok) {
      if (next != nullptr) {
        napi_value pending = nullptr;
        napi_get_and_clear_last_exception(env, &pending);
        napi_detach_arraybuffer(env, buffer);
        Unmap(next);
        LetGo(env, next);
      }
      ThrowMallocscope(env, kImageOpen, name_ + ": Node could not make a view of " + std::to_string(length) + " bytes");
    }
    Release(env);
    region_ = next;
    length_ = length;
    return Napi::Value(env, view);
  }

  // Refuses to go on with a mapping of a file that may shrink once another SIGBUS handler replaced the guard
  // (a new mapping installs it again: GuardRange).
  void RequireGuard(Napi::Env env) const {
    if (!sealed_ && !GuardInstalled()) {
      ThrowMallocscope(env, kImageUnguarded,
                       name_ + ": another SIGBUS handler replaced the readers' guard (a process.on('SIGBUS') listener, or a native "
                               "sigaction): a read past the file's end, should someone truncate it, would fault forever");
    }
  }

  // close(): detaches the view, unmaps, closes the descriptor. Idempotent.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release(info.Env());
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return info.Env().Undefined();
  }

  // Detaches the current buffer and unmaps it, then lets go of the record.
  void Release(Napi::Env env) {
    if (region_ == nullptr) return;
    napi_value buffer = nullptr;
    if (region_->buffer != nullptr && napi_get_reference_value(env, region_->buffer, &buffer) == napi_ok && buffer != nullptr) {
      napi_detach_arraybuffer(env, buffer);
    }
    Unmap(region_);
    LetGo(env, region_);
    region_ = nullptr;
  }

  napi_env env_ = nullptr;
  size_t page_ = 4096;
  int fd_ = -1;
  std::string name_;
  bool sealed_ = false;
  bool truncated_ = false;
  Region* region_ = nullptr;
  uint64_t length_ = 0;
  uint64_t max_view_ = UINT64_MAX;
};

}  // namespace

Napi::Function DefineHeapImage(Napi::Env env) { return HeapImage::Define(env); }

}  // namespace mallocscope
