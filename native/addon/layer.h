// The native system layer: one object per NativeSystem, holding the reservation that carries the emulated
// program break, the registry of the mappings it handed out, the ranges it protected, and the views
// (external ArrayBuffers) JavaScript holds over that memory. Its methods live in one file per idea:
// reservation.cc (the break), mappings.cc (mmap/munmap/mremap/madvise), heaps.cc (thread arenas' heaps:
// reserve, mprotect), views.cc (bytes, copy, zero), protect.cc (mprotect, mlock), resident.cc (mincore),
// backing.cc (the break's pages in a shared memfd or a file instead of private memory).
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace mallocscope {

class Layer;

// One ArrayBuffer over real memory. Owned by its finalizer (which may run a turn of the event loop after the
// buffer died, or after we detached it): `layer` is null once the layer let go of it, and the finalizer then
// only frees the record.
struct View {
  Layer* layer;
  uintptr_t address;
  size_t length;
  napi_ref ref;  // weak: finds the buffer to detach while it lives
};

// A mapping the layer handed out. `address` (the map key) is what mmap returned to the caller; with guard
// pages, PROT_NONE pages lie before and after it and belong to the same record. A reservation (reserve():
// a thread arena's heap) starts PROT_NONE and has no guards; its pages not yet made read-write are listed in
// the layer's `uncommitted_`.
struct Mapping {
  size_t length;
  size_t front_guard;
  size_t back_guard;
  bool reservation = false;
};

// Non-overlapping ranges: start -> (end, prot).
using RangeMap = std::map<uintptr_t, std::pair<uintptr_t, int>>;
// Drops [start, end) from `ranges`, splitting entries that straddle its edges.
void EraseRange(RangeMap& ranges, uintptr_t start, uintptr_t end);
// Whether any entry of `ranges` overlaps [start, end).
bool Overlaps(const RangeMap& ranges, uintptr_t start, uintptr_t end);
// Bytes of `ranges` inside [start, end).
uint64_t BytesIn(const RangeMap& ranges, uintptr_t start, uintptr_t end);

class Layer : public Napi::ObjectWrap<Layer> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Layer(const Napi::CallbackInfo& info);
  ~Layer() override;

  // reservation.cc
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Sbrk(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);
  // mappings.cc
  Napi::Value Mmap(const Napi::CallbackInfo& info);
  Napi::Value Munmap(const Napi::CallbackInfo& info);
  Napi::Value Mremap(const Napi::CallbackInfo& info);
  Napi::Value Madvise(const Napi::CallbackInfo& info);
  Napi::Value Regions(const Napi::CallbackInfo& info);
  // heaps.cc
  Napi::Value Reserve(const Napi::CallbackInfo& info);
  Napi::Value Mprotect(const Napi::CallbackInfo& info);
  // views.cc
  Napi::Value Bytes(const Napi::CallbackInfo& info);
  Napi::Value Detach(const Napi::CallbackInfo& info);
  Napi::Value Copy(const Napi::CallbackInfo& info);
  Napi::Value Zero(const Napi::CallbackInfo& info);
  // protect.cc
  Napi::Value Protect(const Napi::CallbackInfo& info);
  Napi::Value Lock(const Napi::CallbackInfo& info);
  Napi::Value Unlock(const Napi::CallbackInfo& info);
  // resident.cc
  Napi::Value Resident(const Napi::CallbackInfo& info);
  // backing.cc
  Napi::Value Backing(const Napi::CallbackInfo& info);
  // check(guard): throws what the next call would (released, HEAP_BACKING_LOST, with `guard` also
  // HEAP_BACKING_UNGUARDED), else nothing.
  Napi::Value Check(const Napi::CallbackInfo& info);
  // faults(): a Uint32Array over the guard's fault counter of this backing, which JavaScript reads before each
  // Allocator call without calling the addon (null without a backing).
  Napi::Value Faults(const Napi::CallbackInfo& info);

  // Called by a view's finalizer while the layer still tracks it.
  void Forget(View* view);

  // Releases the layers of this env whose JavaScript objects the GC has collected but whose finalizers have
  // not run yet (Node runs them on a later turn of the event loop, so a loop that never yields would keep
  // all their memory). Called whenever a layer is created.
  static void ReleaseCollected(Napi::Env env);

 private:
  // Refuses every call after release(), and every call once a page of the backing was lost. With `guard`, also
  // once another SIGBUS handler replaced the guard (a system call: asked at the break's moves, sharedHeap(),
  // and when JavaScript saw a SIGBUS listener come or go).
  void CheckLive(Napi::Env env, bool guard = false) const;
  // Whether [address, address + length) lies inside the committed break area or inside one mapping (and, in
  // a reservation, only in pages made read-write).
  bool HandedOut(uintptr_t address, size_t length) const;
  // The same, or a RangeError (ERR_NOT_MAPPED) naming `what`.
  void RequireHandedOut(Napi::Env env, uintptr_t address, size_t length, const char* what) const;
  // The mapping that holds all of [address, address + length), or mappings_.end().
  std::map<uintptr_t, Mapping>::iterator Containing(uintptr_t address, size_t length);
  // The mapping that starts exactly at `address` with exactly `length` bytes, or a RangeError.
  std::map<uintptr_t, Mapping>::iterator RequireMapping(Napi::Env env, uintptr_t address, size_t length, const char* what);
  // Detaches every view that overlaps [start, end): that memory is going away or moving.
  void InvalidateViews(Napi::Env env, uintptr_t start, uintptr_t end);
  // Detaches one view and lets go of its record (its finalizer frees it later).
  void DetachView(Napi::Env env, View* view);
  // Forgets protections recorded inside [start, end) (the memory was unmapped or released).
  void ForgetProtections(uintptr_t start, uintptr_t end);
  // Whether any part of [start, end) is protected with less than `needed` (PROT_READ or PROT_WRITE).
  bool Restricted(uintptr_t start, uintptr_t end, int needed) const;
  // Faults in the pages of [address, address + length) writable before copy or zero writes them all.
  void Prefault(uintptr_t address, size_t length) const;
  // Unmaps everything; with `env`, detaches the views first.
  void ReleaseAll(Napi::Env env);
  // Tells V8 how much memory the layer holds now (the committed heap and the mappings), so that the GC
  // weighs a dropped layer by its real size and collects it in time.
  void ReportExternal(Napi::Env env);
  // backing.cc: opens the backing the constructor's third argument names ('shared', or a file's path).
  void OpenBacking(Napi::Env env, const Napi::Value& backing);
  // Maps the backing's pages for [from, to) of the heap over the reservation (the break grows); false when
  // the kernel refuses the memory, as sbrk fails.
  bool GrowBacking(Napi::Env env, uintptr_t from, uintptr_t to);
  // The break gave back [from, to): PROT_NONE reservation again, the backing's pages freed (a hole).
  void ShrinkBacking(Napi::Env env, uintptr_t from, uintptr_t to);
  // madvise of heap pages: the backing's pages freed, as MADV_DONTNEED frees private ones.
  void TrimBacking(Napi::Env env, uintptr_t from, uintptr_t to);
  // Unguards and closes the backing (release).
  void CloseBacking();
  bool backed() const { return backing_fd_ >= 0; }
  // The page size, as a size_t.
  size_t page() const { return page_; }

  size_t page_ = 4096;
  uintptr_t base_ = 0;       // the reservation's start, and the emulated break's start
  size_t reserved_ = 0;      // bytes of address space reserved
  uintptr_t brk_ = 0;        // the emulated break, byte-exact as the kernel keeps it
  uintptr_t committed_ = 0;  // the page-aligned end of the read-write part: brk_ rounded up
  bool guard_pages_ = false;
  bool released_ = false;
  std::map<uintptr_t, Mapping> mappings_;
  // Ranges protected with less than read-write: start -> (end, prot). Non-overlapping.
  RangeMap protections_;
  // Pages of reservations not made read-write yet (prot PROT_NONE): no view, copy or protect may reach them.
  RangeMap uncommitted_;
  // Live views by address.
  std::multimap<uintptr_t, View*> views_;
  // The env, for detaching views from the destructor.
  napi_env env_ = nullptr;
  // Bytes last reported with napi_adjust_external_memory.
  int64_t reported_ = 0;
  // The backing (backing.cc): a memfd or a regular file whose offset 0 is base_; -1 when the heap is private.
  int backing_fd_ = -1;
  bool backing_file_ = false;
  std::string backing_path_;
  uint64_t backing_size_ = 0;  // the backing's size: the break's high-water mark (it never shrinks)
  int guard_slot_ = -1;        // the SIGBUS guard over the reservation (sigbus.h)
};

// Module-level functions (not tied to one layer): protect.cc, baseline.cc and spawn.cc.
Napi::Value LockAll(const Napi::CallbackInfo& info);
Napi::Value UnlockAll(const Napi::CallbackInfo& info);
// munlockall if `env`'s lockAll locked the process and nothing unlocked it since (the env's cleanup hook).
void UndoLockAll(napi_env env);
Napi::Value GlibcMallocFree(const Napi::CallbackInfo& info);
Napi::Value GlibcMallocFreeOnce(const Napi::CallbackInfo& info);
// spawn.cc
Napi::Value RunSync(const Napi::CallbackInfo& info);
// image.cc: the reader of a heap backing (HeapImage).
Napi::Function DefineHeapImage(Napi::Env env);

inline void* Ptr(uintptr_t address) { return reinterpret_cast<void*>(address); }
inline uintptr_t AlignUp(uintptr_t value, size_t page) { return (value + page - 1) & ~static_cast<uintptr_t>(page - 1); }
inline uintptr_t AlignDown(uintptr_t value, size_t page) { return value & ~static_cast<uintptr_t>(page - 1); }

}  // namespace mallocscope
