// The SIGBUS guard (sigbus.h). A MAP_SHARED mapping of a file faults with SIGBUS where a page lies wholly past
// the file's end (someone truncated it) or where the filesystem cannot allocate the page a write needs
// (ENOSPC on a sparse file). Wayland compositors meet the same problem with clients' shared memory and solve
// it the same way: the handler maps private anonymous memory over the faulting page, so the faulting
// instruction runs again and completes (a read sees zeros, a write lands in memory that no file backs), and
// the fault is counted for the range's owner to report.
//
// The handler must be async-signal-safe: the ranges live in a fixed table of atomics, and it only reads them,
// calls mmap (a plain system call) and bumps a counter. A range is faulted only by the thread that reads it
// (a view belongs to one JavaScript thread) and unguarded by that same thread before it is unmapped, so the
// handler never maps over memory that was unmapped meanwhile. Faults outside every range go to the handler
// that was there before (Node installs none for SIGBUS: the default action then kills the process as before),
// and so does a SIGBUS that no fault raised (kill -BUS): with the default action, the process dies of it.
//
// Whoever calls sigaction(SIGBUS) after us replaces the guard: libuv does for process.on('SIGBUS'), whose
// handler only notes the signal and returns, so a faulting access would run again forever. GuardInstalled()
// lets the owners of ranges see it and refuse to go on (HEAP_BACKING_UNGUARDED) rather than loop.
#include "sigbus.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>

namespace mallocscope {

namespace {

struct Slot {
  std::atomic<uintptr_t> start{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<int> prot{0};
  std::atomic<uint32_t> faults{0};
  std::atomic<bool> taken{false};
};

// One slot per live backed heap or heap image: far more than a test or a tool holds at once.
constexpr int kSlots = 1024;
Slot slots[kSlots];
uintptr_t page_size = 4096;
struct sigaction previous {};
std::mutex install_mutex;

void OnSigbus(int signal, siginfo_t* info, void* context) {
  int saved = errno;
  if (info->si_code == BUS_ADRERR) {
    uintptr_t address = reinterpret_cast<uintptr_t>(info->si_addr);
    for (Slot& slot : slots) {
      if (address < slot.start.load(std::memory_order_acquire) || address >= slot.end.load(std::memory_order_acquire)) continue;
      void* page = reinterpret_cast<void*>(address & ~(page_size - 1));
      if (mmap(page, page_size, slot.prot.load(), MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
        slot.faults.fetch_add(1);
        errno = saved;
        return;
      }
      break;  // no memory for the page: nothing can save this access
    }
  }
  errno = saved;
  // Not ours: whatever was there before decides.
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction != nullptr) {
      previous.sa_sigaction(signal, info, context);
      return;
    }
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(signal);
    return;
  }
  // si_code <= 0: sent by kill, tgkill or sigqueue, not by a fault. Ignored when it was ignored before (the guard
  // stays for the faults to come); with the default action, the process dies of it as it would have without us:
  // the default restored and the signal raised again, pending (SIGBUS is blocked while this handler runs) until
  // the handler returns.
  bool sent = info->si_code <= 0;
  if (sent && !(previous.sa_flags & SA_SIGINFO) && previous.sa_handler == SIG_IGN) return;
  struct sigaction fallback {};
  fallback.sa_handler = SIG_DFL;
  sigemptyset(&fallback.sa_mask);
  sigaction(SIGBUS, &fallback, nullptr);
  // A fault needs no raise: returning runs the faulting access again, which faults and kills with the default.
  if (sent) raise(SIGBUS);
}

bool Ours(const struct sigaction& action) { return (action.sa_flags & SA_SIGINFO) != 0 && action.sa_sigaction == OnSigbus; }

// Installs the handler unless it is in place, keeping what was there as `previous` (read before ours goes in,
// so that the handler never runs with a stale one). Again after someone replaced it: a new range is then
// guarded, and their handler still gets what is not ours (a listener of process.on('SIGBUS') its kill -BUS).
void Install() {
  std::lock_guard<std::mutex> hold(install_mutex);
  page_size = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  struct sigaction current {};
  if (sigaction(SIGBUS, nullptr, &current) != 0 || Ours(current)) return;
  previous = current;
  struct sigaction action {};
  action.sa_sigaction = OnSigbus;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  sigaction(SIGBUS, &action, nullptr);
}

}  // namespace

int GuardRange(uintptr_t start, uintptr_t end, int prot) {
  Install();
  for (int i = 0; i < kSlots; i++) {
    bool expected = false;
    if (!slots[i].taken.compare_exchange_strong(expected, true)) continue;
    slots[i].faults.store(0);
    slots[i].prot.store(prot);
    // start before end, and end before start when unguarding: the handler reads start, then end, and so never
    // sees a range made of one old and one new bound.
    slots[i].start.store(start, std::memory_order_release);
    slots[i].end.store(end, std::memory_order_release);
    return i;
  }
  return -1;
}

void UnguardRange(int slot) {
  if (slot < 0 || slot >= kSlots) return;
  slots[slot].end.store(0, std::memory_order_release);
  slots[slot].start.store(0, std::memory_order_release);
  slots[slot].taken.store(false);
}

bool GuardInstalled() {
  struct sigaction current {};
  return sigaction(SIGBUS, nullptr, &current) == 0 && Ours(current);
}

// JavaScript reads the counter as a plain uint32 (Layer::Faults).
static_assert(std::atomic<uint32_t>::is_always_lock_free && sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));

std::atomic<uint32_t>* GuardCounter(int slot) { return slot < 0 || slot >= kSlots ? nullptr : &slots[slot].faults; }

uint32_t GuardFaults(int slot) { return slot < 0 || slot >= kSlots ? 0 : slots[slot].faults.load(); }

}  // namespace mallocscope
