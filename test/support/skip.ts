// For tests that need something this machine may lack (a browser, prlimit, a glibc build): such a test is
// registered as skipped, with its reason on a line the test runner collects, never as a test that passes.
import type { Test } from 'uvu';

/**
 * Returns a test-registering function that behaves like `test` while `reason` is undefined, and otherwise
 * registers each test as skipped and prints `SKIP <name>: <reason>`, which scripts/run-tests.mjs reports.
 */
export function unless(test: Test, reason: string | undefined): (name: string, fn: () => void | Promise<void>) => void {
  if (reason === undefined) return (name, fn) => test(name, fn);
  return (name) => {
    console.log(`SKIP ${name}: ${reason}`);
    test.skip(name);
  };
}
