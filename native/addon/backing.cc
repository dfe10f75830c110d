// The emulated heap in shared memory or in a file, as the seed documents map files: the break's committed
// pages are a backing's (a memfd, or a regular file) mapped MAP_SHARED | MAP_FIXED over the reservation's
// prefix, offset 0 at the heap's start, so the heap keeps its address and another process (or a worker) can
// map the same pages read-only and see every write at once, at offsets from the heap start.
//
// - Growth: the backing first gets the pages (a memfd grows with ftruncate; a file gets its blocks with
//   fallocate, so that a full disk is an error now instead of a SIGBUS at the first write), then they are
//   mapped over the reservation. The private mprotect before it (reservation.cc) keeps brk's overcommit check.
// - Shrinking: the pages go back to being PROT_NONE reservation, and the backing's pages are freed by
//   punching a hole (FALLOC_FL_PUNCH_HOLE): they read as zeros when the break grows over them again, as
//   fresh brk pages do. The backing itself never shrinks (its size is the break's high-water mark), so a
//   reader that mapped what it was told can never fault on a page past its end; a memfd is sealed against
//   shrinking (F_SEAL_SHRINK) so that nobody else can shrink it either. A file can still be truncated by
//   whoever may write it: the SIGBUS guard (sigbus.h) over the reservation turns that into HEAP_BACKING_LOST.
// - madvise (malloc_trim) frees the backing's pages with MADV_REMOVE, which refuses locked pages as
//   MADV_DONTNEED does; a file's blocks are allocated again so that later writes cannot meet a full disk.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "errors.h"
#include "layer.h"
#include "sigbus.h"

namespace mallocscope {

namespace {

// Errors that mean the backing has no room: the disk or the quota is full, or the file would pass
// RLIMIT_FSIZE or the filesystem's largest file (Node ignores SIGXFSZ, so the kernel returns EFBIG).
bool NoRoom(int err) { return err == ENOSPC || err == EDQUOT || err == EFBIG; }

// Gives [offset, offset + length) of the backing back: a hole, or zeros written where the filesystem
// cannot punch one. Returns 0 or the errno.
int FreePages(int fd, uint64_t offset, uint64_t length) {
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0) return 0;
  if (errno != EOPNOTSUPP) return errno;
  static const char zeros[65536] = {};
  for (uint64_t done = 0; done < length;) {
    ssize_t wrote = pwrite(fd, zeros, std::min<uint64_t>(sizeof zeros, length - done), static_cast<off_t>(offset + done));
    if (wrote < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    done += static_cast<uint64_t>(wrote);
  }
  return 0;
}

// Allocates a file's blocks for [offset, offset + length), growing it when that passes its end. Filesystems
// without fallocate get the size alone (ftruncate): the SIGBUS guard then covers a write that finds no room.
int AllocateBlocks(int fd, uint64_t offset, uint64_t length, uint64_t size, bool keep_size) {
  int mode = keep_size ? FALLOC_FL_KEEP_SIZE : 0;
  if (fallocate(fd, mode, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0) return 0;
  if (errno != EOPNOTSUPP) return errno;
  if (!keep_size && offset + length > size && ftruncate(fd, static_cast<off_t>(offset + length)) != 0) return errno;
  return 0;
}

}  // namespace

void Layer::OpenBacking(Napi::Env env, const Napi::Value& backing) {
  if (backing.IsString() && backing.As<Napi::String>().Utf8Value() == "shared") {
    // MFD_ALLOW_SEALING for F_SEAL_SHRINK; F_SEAL_SEAL so that nobody adds F_SEAL_GROW or F_SEAL_WRITE later.
    backing_fd_ = memfd_create("mallocscope-heap", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (backing_fd_ < 0) ThrowMallocscope(env, kBackingOpen, "backing 'shared': cannot create the memfd", errno, "memfd_create");
    if (fcntl(backing_fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
      ThrowMallocscope(env, kBackingOpen, "backing 'shared': cannot seal the memfd against shrinking", errno, "fcntl");
    }
  } else if (backing.IsObject() && backing.As<Napi::Object>().Get("file").IsString()) {
    backing_file_ = true;
    backing_path_ = backing.As<Napi::Object>().Get("file").As<Napi::String>().Utf8Value();
    const std::string& path = backing_path_;
    // Opened without O_TRUNC, and truncated only once it is known to be a regular file: O_TRUNC on whatever
    // else the path names (a device, a FIFO) is not ours to do.
    backing_fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
    if (backing_fd_ < 0) {
      int err = errno;
      std::string why = err == ENOENT ? " (is its directory there?)" : err == EACCES || err == EROFS || err == EPERM ? " (it must be writable)" : "";
      ThrowMallocscope(env, kBackingOpen, path + ": cannot open the heap's backing file" + why, err, "open");
    }
    struct stat st {};
    if (fstat(backing_fd_, &st) != 0) ThrowMallocscope(env, kBackingOpen, path + ": cannot stat the heap's backing file", errno, "fstat");
    if (!S_ISREG(st.st_mode)) ThrowMallocscope(env, kBackingOpen, path + ": the heap's backing must be a regular file, and this is not one");
    // One heap per file: an exclusive lock on the open file description, taken before the truncation (which
    // would pull the pages from under a heap that lives on the file) and let go when the descriptor is closed
    // (release(), or the GC's). flock locks of two opens conflict in one process as between processes.
    if (flock(backing_fd_, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      if (err == EWOULDBLOCK) ThrowMallocscope(env, kBackingOpen, path + ": in use by another heap (a live NativeSystem backed by this file, here or in another process); release it first, or choose another file");
      ThrowMallocscope(env, kBackingOpen, path + ": cannot lock the heap's backing file", err, "flock");
    }
    if (ftruncate(backing_fd_, 0) != 0) ThrowMallocscope(env, kBackingOpen, path + ": cannot truncate the heap's backing file", errno, "ftruncate");
    // Whether its filesystem maps files shared and writable (some cannot: ENODEV), asked now rather than at
    // the first growth.
    void* probe = mmap(nullptr, page_, PROT_READ | PROT_WRITE, MAP_SHARED, backing_fd_, 0);
    if (probe == MAP_FAILED) ThrowMallocscope(env, kBackingOpen, path + ": its filesystem cannot map it shared and writable", errno, "mmap");
    munmap(probe, page_);
  } else {
    ThrowType(env, kBadType, "the \"backing\" argument must be 'shared' or { file: path }");
  }
  guard_slot_ = GuardRange(base_, base_ + reserved_, PROT_READ | PROT_WRITE);
  if (guard_slot_ < 0) ThrowMallocscope(env, kBackingOpen, "too many heap backings and heap images alive at once (1024): release some");
}

void Layer::CloseBacking() {
  if (guard_slot_ >= 0) UnguardRange(guard_slot_);
  guard_slot_ = -1;
  if (backing_fd_ >= 0) close(backing_fd_);
  backing_fd_ = -1;
}

bool Layer::GrowBacking(Napi::Env env, uintptr_t from, uintptr_t to) {
  uint64_t offset = from - base_;
  uint64_t length = to - from;
  uint64_t end = to - base_;
  // Whatever fails below leaves [from, to) as it was before the growth: PROT_NONE reservation.
  auto restore = [&] { mmap(Ptr(from), length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0); };
  int err = 0;
  const char* call = backing_file_ ? "fallocate" : "ftruncate";
  if (backing_file_) {
    err = AllocateBlocks(backing_fd_, offset, length, backing_size_, false);
  } else if (end > backing_size_ && ftruncate(backing_fd_, static_cast<off_t>(end)) != 0) {
    err = errno;
  }
  if (err != 0) {
    restore();
    std::string what = (backing_file_ ? backing_path_ : std::string("the shared heap")) + ": cannot grow the heap's backing to " + std::to_string(end) + " bytes";
    ThrowMallocscope(env, NoRoom(err) ? kBackingFull : kBackingFailed, what, err, call);
  }
  backing_size_ = std::max(backing_size_, end);
  if (mmap(Ptr(from), length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, backing_fd_, static_cast<off_t>(offset)) == MAP_FAILED) {
    err = errno;
    restore();
    if (err == ENOMEM || err == EAGAIN) return false;
    ThrowMallocscope(env, kBackingFailed, "mapping the heap's backing at " + Hex(from), err, "mmap");
  }
  return true;
}

void Layer::ShrinkBacking(Napi::Env env, uintptr_t from, uintptr_t to) {
  if (mmap(Ptr(from), to - from, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
    ThrowMallocscope(env, kBackingFailed, "giving back the heap's pages at " + Hex(from), errno, "mmap");
  }
  int err = FreePages(backing_fd_, from - base_, to - from);
  if (err != 0) ThrowMallocscope(env, kBackingFailed, "freeing the backing's pages past the break", err, "fallocate");
}

void Layer::TrimBacking(Napi::Env env, uintptr_t from, uintptr_t to) {
  if (madvise(Ptr(from), to - from, MADV_REMOVE) != 0) {
    // EINVAL: locked pages, which keep their contents as under MADV_DONTNEED (glibc ignores the result).
    if (errno == EINVAL) return;
    int err = errno == EOPNOTSUPP ? FreePages(backing_fd_, from - base_, to - from) : errno;
    if (err != 0) ThrowMallocscope(env, kBackingFailed, "freeing the backing's pages at " + Hex(from), err, "madvise");
  }
  // Blocks for the pages that stay mapped; should the disk be full now, a later write there is caught by the
  // SIGBUS guard (HEAP_BACKING_LOST) rather than failing malloc_trim, whose result glibc ignores.
  if (backing_file_) AllocateBlocks(backing_fd_, from - base_, to - from, backing_size_, true);
}

// check(): the backing's state between calls. A page lost under a write through a view happens in JavaScript,
// with no call of the layer: NativeSystem asks before each Allocator call, so that the next call is refused.
Napi::Value Layer::Check(const Napi::CallbackInfo& info) {
  CheckLive(info.Env(), info.Length() > 0 && info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

Napi::Value Layer::Faults(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckLive(env);
  std::atomic<uint32_t>* counter = GuardCounter(guard_slot_);
  if (counter == nullptr) return env.Null();
  // The slot table is never freed, so the buffer never outlives its memory; it reads another backing's count
  // once this one is released, which NativeSystem never asks for. No finalizer: nothing to free.
  napi_value buffer;
  if (napi_create_external_arraybuffer(env, counter, sizeof *counter, nullptr, nullptr, &buffer) != napi_ok) {
    throw Napi::Error::New(env);
  }
  return Napi::Uint32Array::New(env, 1, Napi::ArrayBuffer(env, buffer), 0);
}

// backing(): { kind: 'shared' | 'file', fd, size, path (a file's) }, or null without a backing.
Napi::Value Layer::Backing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckLive(env, true);
  if (!backed()) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("kind", Napi::String::New(env, backing_file_ ? "file" : "shared"));
  out.Set("fd", Napi::Number::New(env, backing_fd_));
  out.Set("size", Napi::Number::New(env, static_cast<double>(backing_size_)));
  if (backing_file_) out.Set("path", Napi::String::New(env, backing_path_));
  return out;
}

}  // namespace mallocscope
