// The glibc baselines bench/native.ts compares the native backend with: glibcMallocFree's figure is the
// nanoseconds its own loop took (whole, and inside the time the call took as seen from JavaScript, so a
// wrong clock or unit shows), and both refuse bad numbers before C++ sees them (NaN would become 0, -1 a
// huge size_t). No speed is asserted here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadAddon } from '../dist/native.js';

const addon = loadAddon() as ReturnType<typeof loadAddon> & { glibcMallocFreeOnce(size: number): undefined };

function code(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

test('glibcMallocFree returns the nanoseconds of its loop: whole, and within the time of the call', () => {
  for (const [size, count] of [
    [64, 100000],
    [4096, 10000],
    [1 << 20, 1000],
    [64, 0],
  ]) {
    const start = process.hrtime.bigint();
    const ns = addon.glibcMallocFree(size, count);
    const elapsed = Number(process.hrtime.bigint() - start);
    assert.ok(Number.isInteger(ns), `${ns} ns is a whole number (CLOCK_MONOTONIC counts nanoseconds)`);
    assert.ok(ns >= 0, `${ns} ns`);
    if (count > 0) assert.ok(ns > 0, `${count} pairs of ${size} B took ${ns} ns`);
    assert.ok(ns <= elapsed, `the loop's ${ns} ns fit inside the call's ${elapsed} ns`);
  }
});

test('glibcMallocFreeOnce runs and returns undefined', () => {
  assert.is(addon.glibcMallocFreeOnce(64), undefined);
  assert.is(addon.glibcMallocFreeOnce(1 << 20), undefined);
});

test('bad sizes and counts are refused with a code', () => {
  for (const bad of [Number.NaN, -1, 1.5, 2 ** 53]) {
    assert.is(
      code(() => addon.glibcMallocFreeOnce(bad)),
      'ERR_OUT_OF_RANGE',
      `size ${bad}`,
    );
    assert.is(
      code(() => addon.glibcMallocFree(bad, 1)),
      'ERR_OUT_OF_RANGE',
      `size ${bad}`,
    );
    assert.is(
      code(() => addon.glibcMallocFree(64, bad)),
      'ERR_OUT_OF_RANGE',
      `count ${bad}`,
    );
  }
  assert.is(
    code(() => (addon.glibcMallocFreeOnce as (size: unknown) => unknown)('64')),
    'ERR_INVALID_ARG_TYPE',
  );
});

test.run();
