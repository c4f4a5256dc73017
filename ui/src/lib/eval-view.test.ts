import { describe, expect, it } from "vitest";
import { barChart, intervalLabel, percent, scoreTable, scoreTitle, secondsPerAnswer } from "./eval-view";
import { fakeScore } from "./fake-api";

describe("evaluation layout", () => {
  const scores = [
    fakeScore("small", "math", 1, 4),
    fakeScore("small", "all", 3, 10),
    fakeScore("small", "general", 2, 6),
    fakeScore("big", "general", 5, 6),
    fakeScore("big", "all", 8, 10),
    fakeScore("big", "code", 3, 4, { mode: "refine" }),
  ];

  it("groups scores into model × mode rows, best overall first, domains in order then all", () => {
    const t = scoreTable(scores);
    expect(t.rows.map((r) => r.key)).toEqual(["big/single", "small/single", "big/refine"]);
    expect(t.domains).toEqual(["general", "math", "code", "all"]);
    expect(t.rows[1].cells.math.passed).toBe(1);
    expect(scoreTable([]).domains).toEqual([]);
  });

  it("writes rates, intervals and times for people", () => {
    expect(percent(0.456)).toBe("46%");
    expect(intervalLabel({ low: 0.234, high: 0.681 })).toBe("23–68%");
    expect(intervalLabel({ low: null, high: null })).toBe("");
    expect(scoreTitle({ ...fakeScore("m", "all", 9, 20), low: 0.23, high: 0.68 })).toBe("9 of 20 passed (45%); 95% interval 23–68%");
    expect(secondsPerAnswer(1500)).toBe("1.5 s");
    expect(secondsPerAnswer(42_000)).toBe("42 s");
    expect(secondsPerAnswer(42)).toBe("42 ms");
  });

  it("draws one group per domain and one bar per target, heights proportional to the pass rate", () => {
    const t = scoreTable(scores);
    const c = barChart(t, 700, 250);
    expect(c.groups.map((g) => g.domain)).toEqual(t.domains);
    // Every score is one bar (big/refine has only code).
    expect(c.bars).toHaveLength(scores.length);
    const plot = c.bottom - c.top;
    const bigAll = c.bars.find((b) => b.key === "big/single" && b.domain === "all")!;
    expect(bigAll.height).toBeCloseTo(0.8 * plot, 5);
    expect(bigAll.low! > bigAll.y && bigAll.high! < bigAll.y).toBe(true);
    // Bars of one group sit side by side around its centre, inside the plot.
    const general = c.bars.filter((b) => b.domain === "general");
    expect(general[0].x + general[0].width).toBeLessThanOrEqual(general[1].x);
    for (const b of c.bars) expect(b.x >= c.left && b.x + b.width <= c.right).toBe(true);
    expect(c.ticks.map((x) => x.value)).toEqual([0, 0.25, 0.5, 0.75, 1]);
  });
});
