import { describe, expect, it } from "vitest";
import { normalizeRect, nudge, toImageRect } from "./selection";

describe("region selection geometry", () => {
  it("normalises drags in any direction", () => {
    expect(normalizeRect({ x: 50, y: 40 }, { x: 10, y: 90 })).toEqual({ x: 10, y: 40, width: 40, height: 50 });
  });

  it("maps window pixels to image pixels on a HiDPI screen and clips", () => {
    const r = toImageRect({ x: 10, y: 20, width: 100, height: 50 }, { sx: 2, sy: 2 }, { width: 2560, height: 1600 });
    expect(r).toEqual({ x: 20, y: 40, width: 200, height: 100 });
    const clipped = toImageRect({ x: 1200, y: 700, width: 200, height: 200 }, { sx: 2, sy: 2 }, { width: 2560, height: 1600 });
    expect(clipped).toEqual({ x: 2400, y: 1400, width: 160, height: 200 });
  });

  it("nudges inside the screen and resizes with a minimum size", () => {
    const r = { x: 0, y: 10, width: 20, height: 20 };
    const b = { width: 100, height: 100 };
    expect(nudge(r, "ArrowLeft", 1, false, b)).toEqual(r);
    expect(nudge(r, "ArrowDown", 10, false, b)).toEqual({ ...r, y: 20 });
    expect(nudge(r, "ArrowLeft", 30, true, b)).toEqual({ ...r, width: 4 });
    expect(nudge(r, "ArrowRight", 500, true, b)).toEqual({ ...r, width: 100 });
  });
});
