// How the addon reports trouble to JavaScript: refused arguments as TypeError/RangeError with a code (checked
// before any system call), failed system calls as Node-shaped errors (code, errno, syscall), and the troubles
// of heap backings and heap images as mallocscope's own MallocscopeError (code, and errno and syscall when a
// system call failed).
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

namespace mallocscope {

// Codes of refused arguments. Node's own codes where one fits; ours where Node has none.
inline constexpr const char* kBadType = "ERR_INVALID_ARG_TYPE";   // not a number (TypeError)
inline constexpr const char* kOutOfRange = "ERR_OUT_OF_RANGE";    // NaN, negative, fractional, too big
inline constexpr const char* kUnaligned = "ERR_UNALIGNED";        // not a multiple of the page size
inline constexpr const char* kNotMapped = "ERR_NOT_MAPPED";       // not memory this layer handed out
inline constexpr const char* kProtected = "ERR_PROTECTED";        // the range is read-only or no-access now
inline constexpr const char* kReleased = "ERR_RELEASED";          // the layer was released
inline constexpr const char* kGuardedPart = "ERR_GUARDED_PART";   // munmap of a part of a guarded mapping
inline constexpr const char* kNotReserved = "ERR_NOT_RESERVED";   // mprotect outside a reservation
inline constexpr const char* kMemlockFuture = "ERR_MEMLOCK_FUTURE"; // MCL_FUTURE under a finite RLIMIT_MEMLOCK

// Codes of heap backings (backing.cc) and heap images (image.cc), thrown as MallocscopeError.
inline constexpr const char* kBackingOpen = "HEAP_BACKING_OPEN";        // the backing file cannot be made or used
inline constexpr const char* kBackingFull = "HEAP_BACKING_FULL";        // no room to grow it (ENOSPC, EDQUOT, EFBIG)
inline constexpr const char* kBackingFailed = "HEAP_BACKING_FAILED";    // any other failure of a call on it
inline constexpr const char* kBackingLost = "HEAP_BACKING_LOST";        // pages of it vanished (SIGBUS caught)
inline constexpr const char* kBackingUnguarded = "HEAP_BACKING_UNGUARDED";  // someone replaced the SIGBUS guard
inline constexpr const char* kImageOpen = "HEAP_IMAGE_OPEN";            // a reader cannot open or map it
inline constexpr const char* kImageShort = "HEAP_IMAGE_SHORT";          // more bytes asked than the file has
inline constexpr const char* kImageTruncated = "HEAP_IMAGE_TRUNCATED";  // the file shrank under a reader
inline constexpr const char* kImageClosed = "HEAP_IMAGE_CLOSED";        // the reader was closed
inline constexpr const char* kImageUnguarded = "HEAP_IMAGE_UNGUARDED";  // someone replaced the SIGBUS guard
inline constexpr const char* kImageTooLarge = "VIEW_TOO_LARGE";         // more bytes than Node's largest ArrayBuffer

// Throws a TypeError carrying `code`.
[[noreturn]] void ThrowType(Napi::Env env, const char* code, const std::string& message);
// Throws a RangeError carrying `code`.
[[noreturn]] void ThrowRange(Napi::Env env, const char* code, const std::string& message);
// Throws an Error carrying `code`.
[[noreturn]] void ThrowCoded(Napi::Env env, const char* code, const std::string& message);

// setErrorClass(MallocscopeError): the class ThrowMallocscope instantiates in this env (src/native.ts passes it
// when it loads the addon). Without it, a plain Error with the same code.
Napi::Value SetErrorClass(const Napi::CallbackInfo& info);
// Throws a MallocscopeError(code, message); with `err`, the message ends with the errno's name and text and the
// error carries errno (negative, as Node's) and syscall.
[[noreturn]] void ThrowMallocscope(Napi::Env env, const char* code, const std::string& message, int err = 0, const char* syscall = nullptr);
// "ENOENT (No such file or directory)".
std::string ErrnoText(int err);

// A failed system call in Node's shape: code 'ENOMEM', errno -12 (negative, as Node's fs errors), syscall
// 'mmap', and a message naming both and, where it helps, what to do about it.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& detail = "");
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& detail = "");

// Argument i as a byte count or address: a number that is finite, whole, non-negative and exact (below
// 2^53). NaN would otherwise reach C++ as 0, and -1 as a huge size_t: both are refused here.
uint64_t ArgUint(const Napi::CallbackInfo& info, size_t i, const char* name);
// The same, also a multiple of `page` (and, with nonzero, not zero).
uint64_t ArgPageMultiple(const Napi::CallbackInfo& info, size_t i, const char* name, uint64_t page, bool nonzero);
// Argument i as a signed whole number of bytes with |value| below 2^53 (sbrk's increment).
int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name);

// "0x7f3a..." for messages.
std::string Hex(uint64_t value);

}  // namespace mallocscope
