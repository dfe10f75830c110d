// For tests: an allocator whose every call (even one that throws) is followed by check(), the heap's
// invariants, so that a test of one rule also proves the heap whole after each step.
import { Allocator, type AllocatorOptions } from '../../dist/replay/allocator.js';

/** The calls that change the allocator. */
const CALLS = new Set(['malloc', 'calloc', 'realloc', 'memalign', 'free', 'mallopt', 'trim']);

export function checkedAllocator(options?: AllocatorOptions): Allocator {
  const allocator = new Allocator(options);
  return new Proxy(allocator, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function' || !CALLS.has(prop as string)) return value;
      return (...args: unknown[]) => {
        try {
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        } finally {
          target.check();
        }
      };
    },
  });
}
