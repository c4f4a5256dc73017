import { describe, expect, it } from "vitest";
import { canRetry, clip, depths, isFinished, layers, layoutDag, stateLabel, stateTone, type DagStep } from "./dag";

const s = (step: string, ...after: string[]): DagStep => ({ step, after });

describe("depths and layers", () => {
  it("puts a chain one step per layer", () => {
    const steps = [s("a"), s("b", "a"), s("c", "b")];
    expect(Object.fromEntries(depths(steps))).toEqual({ a: 0, b: 1, c: 2 });
    expect(layers(steps)).toEqual([["a"], ["b"], ["c"]]);
  });

  it("layers a diamond: the join waits for both branches", () => {
    const steps = [s("transcript"), s("summary", "transcript"), s("actions", "transcript"), s("notes", "summary", "actions")];
    expect(Object.fromEntries(depths(steps))).toEqual({ transcript: 0, summary: 1, actions: 1, notes: 2 });
    expect(layers(steps)).toEqual([["transcript"], ["summary", "actions"], ["notes"]]);
  });

  it("uses the longest path, not the shortest", () => {
    // d waits for a directly and, through b and c, three steps later.
    const steps = [s("a"), s("b", "a"), s("c", "b"), s("d", "a", "c")];
    expect(depths(steps).get("d")).toBe(3);
    expect(layers(steps)).toEqual([["a"], ["b"], ["c"], ["d"]]);
  });

  it("keeps independent chains apart, each step near the one it waits for", () => {
    const steps = [s("a1"), s("b1"), s("b2", "b1"), s("a2", "a1"), s("b3", "b2")];
    expect(layers(steps)).toEqual([["a1", "b1"], ["a2", "b2"], ["b3"]]);
  });

  it("orders a layer by where its parents are, ties in the run's order", () => {
    const steps = [s("x"), s("y"), s("from-y", "y"), s("from-x", "x"), s("both", "x", "y")];
    expect(layers(steps)[1]).toEqual(["from-x", "both", "from-y"]);
  });

  it("ignores unknown dependencies and survives a cycle", () => {
    expect(Object.fromEntries(depths([s("a", "ghost"), s("b", "a")]))).toEqual({ a: 0, b: 1 });
    const cyclic = [s("a", "c"), s("b", "a"), s("c", "b")];
    const d = depths(cyclic);
    expect([...d.keys()].sort()).toEqual(["a", "b", "c"]);
    expect(layers(cyclic).flat().sort()).toEqual(["a", "b", "c"]);
    expect(depths([s("self", "self")]).get("self")).toBe(0);
  });

  it("handles no steps and repeated ids", () => {
    expect(layers([])).toEqual([]);
    expect(layers([s("a"), s("a")])).toEqual([["a"]]);
  });
});

describe("layoutDag", () => {
  const sizes = { nodeWidth: 100, nodeHeight: 40, gapX: 50, gapY: 10, pad: 5 };

  it("places layers left to right, centres short columns, and draws an arrow per dependency", () => {
    const l = layoutDag([s("t"), s("s", "t"), s("a", "t"), s("n", "s", "a")], sizes);
    const at = Object.fromEntries(l.nodes.map((n) => [n.step, n]));
    expect(at.t).toMatchObject({ layer: 0, row: 0, x: 5, y: 5 + 25 });
    expect(at.s).toMatchObject({ layer: 1, row: 0, x: 155, y: 5 });
    expect(at.a).toMatchObject({ layer: 1, row: 1, x: 155, y: 55 });
    expect(at.n).toMatchObject({ layer: 2, x: 305, y: 30 });
    expect(l.width).toBe(5 + 3 * 100 + 2 * 50 + 5);
    expect(l.height).toBe(5 + 2 * 40 + 10 + 5);
    expect(l.edges.map((e) => `${e.from}>${e.to}`).sort()).toEqual(["a>n", "s>n", "t>a", "t>s"]);
    const ts = l.edges.find((e) => e.from === "t" && e.to === "s")!;
    expect(ts.d.startsWith("M 105 50 C")).toBe(true); // the right middle of t
    expect(ts.d.endsWith("155 25")).toBe(true); // the left middle of s
  });

  it("is empty without steps", () => {
    expect(layoutDag([], sizes)).toMatchObject({ width: 0, height: 0, nodes: [], edges: [] });
  });
});

describe("states", () => {
  it("reads and colours states", () => {
    expect(stateLabel("waiting_approval")).toBe("needs approval");
    expect(stateTone("running")).toBe("running");
    expect(stateTone("succeeded")).toBe("ok");
    expect(stateTone("failed")).toBe("bad");
    expect(stateTone("waiting_approval")).toBe("wait");
    expect(stateTone("skipped")).toBe("off");
    expect(stateTone("cancelled")).toBe("off");
    expect(stateTone("queued")).toBe("idle");
    expect(stateTone("ready")).toBe("idle");
    expect(isFinished("skipped")).toBe(true);
    expect(isFinished("waiting_approval")).toBe(false);
    expect(canRetry("failed")).toBe(true);
    expect(canRetry("succeeded")).toBe(false);
    expect(clip("transcription", 8)).toBe("transcr…");
    expect(clip("short", 8)).toBe("short");
  });
});
