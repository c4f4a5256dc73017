// Pure helpers for a run's graph: each step's depth (its layer), the order within a layer,
// where the boxes and the arrows go, and how a task's state reads.

/** A step of a run as the graph needs it: its id and the steps it waits for. */
export interface DagStep {
  step: string;
  after: string[];
}

/**
 * Each step's depth: the length of the longest path from a root (a step that waits for
 * nothing) through `after`. Steps named in `after` that are not in the run are ignored, and a
 * cycle (which the backend refuses, but a graph must still draw) is cut where it closes.
 */
export function depths(steps: DagStep[]): Map<string, number> {
  const byId = new Map(steps.map((s) => [s.step, s]));
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (id: string): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (visiting.has(id)) return -1; // closes a cycle: this edge does not count
    visiting.add(id);
    let d = 0;
    for (const dep of byId.get(id)?.after ?? []) {
      if (!byId.has(dep) || dep === id) continue;
      const p = visit(dep);
      if (p >= 0) d = Math.max(d, p + 1);
    }
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  for (const s of steps) visit(s.step);
  return depth;
}

/**
 * The steps grouped by depth. The first layer keeps the run's order; in the others a step
 * goes near the steps it waits for (the mean of their rows), ties in the run's order, which
 * keeps arrows short and mostly uncrossed.
 */
export function layers(steps: DagStep[]): string[][] {
  const depth = depths(steps);
  const order = new Map<string, number>();
  steps.forEach((s, i) => order.has(s.step) || order.set(s.step, i));
  const byId = new Map(steps.map((s) => [s.step, s]));
  const count = steps.length ? Math.max(...depth.values()) + 1 : 0;
  const out: string[][] = Array.from({ length: count }, () => []);
  // A repeated id is drawn once.
  for (const [id] of order) out[depth.get(id)!].push(id);
  const row = new Map<string, number>();
  out.forEach((layer, i) => {
    if (i > 0) {
      const centre = (id: string) => {
        const rows = (byId.get(id)?.after ?? []).map((p) => row.get(p)).filter((r): r is number => r !== undefined);
        return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : Number.POSITIVE_INFINITY;
      };
      const keyed = layer.map((id) => ({ id, c: centre(id), o: order.get(id)! }));
      keyed.sort((a, b) => (a.c === b.c ? a.o - b.o : a.c < b.c ? -1 : 1));
      layer.splice(0, layer.length, ...keyed.map((k) => k.id));
    }
    layer.forEach((id, r) => row.set(id, r));
  });
  return out;
}

export interface DagBox {
  step: string;
  layer: number;
  row: number;
  x: number;
  y: number;
}

export interface DagEdge {
  from: string;
  to: string;
  /** An SVG path from the right side of `from` to the left side of `to`. */
  d: string;
}

export interface DagLayout {
  width: number;
  height: number;
  nodeWidth: number;
  nodeHeight: number;
  nodes: DagBox[];
  edges: DagEdge[];
}

export interface DagSizes {
  nodeWidth: number;
  nodeHeight: number;
  gapX: number;
  gapY: number;
  pad: number;
}

export const DAG_SIZES: DagSizes = { nodeWidth: 160, nodeHeight: 54, gapX: 44, gapY: 16, pad: 6 };

/** Where each box goes (layers left to right, each column centred) and the arrows between them. */
export function layoutDag(steps: DagStep[], sizes: DagSizes = DAG_SIZES): DagLayout {
  const { nodeWidth: w, nodeHeight: h, gapX, gapY, pad } = sizes;
  const groups = layers(steps);
  const tallest = Math.max(0, ...groups.map((g) => g.length));
  const nodes: DagBox[] = [];
  const at = new Map<string, DagBox>();
  groups.forEach((group, layer) => {
    const offset = ((tallest - group.length) * (h + gapY)) / 2;
    group.forEach((step, row) => {
      const box = { step, layer, row, x: pad + layer * (w + gapX), y: pad + offset + row * (h + gapY) };
      nodes.push(box);
      at.set(step, box);
    });
  });
  const edges: DagEdge[] = [];
  for (const s of steps) {
    const to = at.get(s.step);
    if (!to) continue;
    for (const dep of new Set(s.after)) {
      const from = at.get(dep);
      if (!from || dep === s.step) continue;
      const x1 = from.x + w;
      const y1 = from.y + h / 2;
      const x2 = to.x;
      const y2 = to.y + h / 2;
      const bend = Math.max(24, (x2 - x1) / 2);
      edges.push({ from: dep, to: s.step, d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}` });
    }
  }
  return {
    width: groups.length ? 2 * pad + groups.length * w + (groups.length - 1) * gapX : 0,
    height: tallest ? 2 * pad + tallest * h + (tallest - 1) * gapY : 0,
    nodeWidth: w,
    nodeHeight: h,
    nodes,
    edges,
  };
}

/** States a task does not leave by itself. */
export const FINISHED = new Set(["succeeded", "failed", "cancelled", "skipped"]);

/** Whether a task is done one way or another. */
export const isFinished = (state: string) => FINISHED.has(state);

/** Whether Retry applies. */
export const canRetry = (state: string) => state === "failed" || state === "cancelled" || state === "skipped";

/** How a state reads. */
export function stateLabel(state: string): string {
  switch (state) {
    case "waiting_approval":
      return "needs approval";
    default:
      return state.replace(/_/g, " ");
  }
}

/** The colour family of a state: running, ok, bad, wait, off (cancelled, skipped) or idle. */
export function stateTone(state: string): "running" | "ok" | "bad" | "wait" | "off" | "idle" {
  switch (state) {
    case "running":
      return "running";
    case "succeeded":
      return "ok";
    case "failed":
      return "bad";
    case "waiting_approval":
      return "wait";
    case "cancelled":
    case "skipped":
      return "off";
    default:
      return "idle";
  }
}

/** A label cut to fit a box: "transcri…". */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`;
}
