// SIGBUS guards for mappings of files that may shrink under us: a page past the file's end faults with
// SIGBUS, which would kill Node. Guarded ranges get a handler that maps an anonymous page over the faulting
// page (the access then completes, reading zeros) and counts the fault, so that the owner of the range can
// report a coded error on its next call instead of the process dying (sigbus.cc).
#pragma once

#include <atomic>
#include <cstdint>

namespace mallocscope {

// Guards [start, end): a SIGBUS (BUS_ADRERR) there maps an anonymous page with `prot` over the faulting page.
// Installs the process's handler when it is not in place (first use, or someone replaced it). Returns the slot, or -1 when every slot is taken.
int GuardRange(uintptr_t start, uintptr_t end, int prot);
// Stops guarding a slot GuardRange returned (before the range is unmapped).
void UnguardRange(int slot);
// Whether the process's SIGBUS handler is still the guard's (someone's sigaction may have replaced it).
bool GuardInstalled();
// Faults the handler absorbed in a slot since it was guarded.
uint32_t GuardFaults(int slot);
// The slot's fault counter itself (the table is static: it lives as long as the process), or null.
std::atomic<uint32_t>* GuardCounter(int slot);

}  // namespace mallocscope
