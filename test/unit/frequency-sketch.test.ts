import { describe, expect, it } from 'vitest';
import { FrequencySketch } from '../../src/cache/frequency-sketch.js';

describe('FrequencySketch', () => {
  it('never undercounts a key, saturates at 15, and keeps most keys apart', () => {
    const s = new FrequencySketch(1000);
    for (let n = 0; n < 5; n++) s.increment('hot');
    expect(s.estimate('hot')).toBeGreaterThanOrEqual(5);
    for (let n = 0; n < 40; n++) s.increment('hot');
    expect(s.estimate('hot')).toBe(15);
    for (let i = 0; i < 1000; i++) s.increment(`k${i}`);
    const overcounted = Array.from({ length: 1000 }, (_, i) => s.estimate(`k${i}`)).filter((e) => e > 1).length;
    expect(Array.from({ length: 1000 }, (_, i) => s.estimate(`k${i}`)).every((e) => e >= 1)).toBe(true);
    expect(overcounted).toBeLessThan(50);
    expect(s.estimate('never seen')).toBeLessThanOrEqual(1);
  });

  it('halves every count after its sample size, so old popularity fades', () => {
    const s = new FrequencySketch(256); // width 256: ages after 2560 additions
    for (let n = 0; n < 12; n++) s.increment('old');
    expect(s.estimate('old')).toBe(12);
    for (let i = 0; i < 2600; i++) s.increment(`filler-${i}`);
    expect(s.estimate('old')).toBeLessThanOrEqual(7);
    expect(s.estimate('old')).toBeGreaterThanOrEqual(6);
  });
});
