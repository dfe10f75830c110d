// The glibc baselines bench/native.ts compares the native backend with: they run, and refuse bad numbers
// before C++ sees them (NaN would become 0, -1 a huge size_t). No timing is asserted here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadAddon } from '../src/native.ts';

const addon = loadAddon() as ReturnType<typeof loadAddon> & { glibcMallocFreeOnce(size: number): undefined };

function code(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

test('glibcMallocFree and glibcMallocFreeOnce run', () => {
  assert.ok(addon.glibcMallocFree(64, 10) >= 0);
  assert.is(addon.glibcMallocFreeOnce(64), undefined);
  assert.is(addon.glibcMallocFreeOnce(1 << 20), undefined);
});

test('bad sizes and counts are refused with a code', () => {
  for (const bad of [Number.NaN, -1, 1.5, 2 ** 53]) {
    assert.is(code(() => addon.glibcMallocFreeOnce(bad)), 'ERR_OUT_OF_RANGE', `size ${bad}`);
    assert.is(code(() => addon.glibcMallocFree(bad, 1)), 'ERR_OUT_OF_RANGE', `size ${bad}`);
    assert.is(code(() => addon.glibcMallocFree(64, bad)), 'ERR_OUT_OF_RANGE', `count ${bad}`);
  }
  assert.is(code(() => (addon.glibcMallocFreeOnce as (size: unknown) => unknown)('64')), 'ERR_INVALID_ARG_TYPE');
});

test.run();
