// How evaluation scores are laid out: the table's rows and columns and the bar chart's
// geometry. Pure functions over what the runtime measured; no scoring happens here.
import type { EvalScoreInfo } from "./api";

/** The router's domains, in the order tables and charts show them. */
export const DOMAINS = ["general", "math", "code", "writing", "translation"] as const;

/** Series colours: mid-tones that read on the light and the dark background alike. */
export const SERIES_COLORS = ["#6366f1", "#10b981", "#f59e0b", "#ec4899", "#06b6d4", "#a855f7", "#84cc16", "#ef4444"];

/** One model in one mode, with its score per domain. */
export interface ScoreRow {
  /** `model/mode`. */
  key: string;
  model: string;
  mode: string;
  /** By domain, `all` included. */
  cells: Record<string, EvalScoreInfo>;
}

export interface ScoreTable {
  /** Domains that have scores, in the usual order, then `all`. */
  domains: string[];
  /** Best overall pass rate first. */
  rows: ScoreRow[];
}

/** Groups scores into rows per model × mode and columns per domain. */
export function scoreTable(scores: EvalScoreInfo[]): ScoreTable {
  const rows = new Map<string, ScoreRow>();
  for (const s of scores) {
    const key = `${s.model}/${s.mode}`;
    let row = rows.get(key);
    if (!row) {
      row = { key, model: s.model, mode: s.mode, cells: {} };
      rows.set(key, row);
    }
    row.cells[s.domain] = s;
  }
  const present = new Set(scores.map((s) => s.domain));
  const known: string[] = DOMAINS.filter((d) => present.has(d));
  const others = [...present].filter((d) => d !== "all" && !known.includes(d)).sort();
  const domains = [...known, ...others, "all"];
  const overall = (r: ScoreRow) => r.cells.all?.rate ?? -1;
  return {
    domains: scores.length ? domains : [],
    rows: [...rows.values()].sort((a, b) => overall(b) - overall(a) || a.key.localeCompare(b.key)),
  };
}

/** 0.456 → "46%". */
export function percent(v: number): string {
  return `${Math.round(v * 100)}%`;
}

/** The 95% interval as "23–68%", or "" when there is none. */
export function intervalLabel(s: Pick<EvalScoreInfo, "low" | "high">): string {
  if (s.low === null || s.high === null) return "";
  return `${Math.round(s.low * 100)}–${Math.round(s.high * 100)}%`;
}

/** A cell's tooltip: "9 of 20 passed (45%); 95% interval 23–68%". */
export function scoreTitle(s: EvalScoreInfo): string {
  const ci = intervalLabel(s);
  return `${s.passed} of ${s.total} passed (${percent(s.rate)})${ci ? `; 95% interval ${ci}` : ""}`;
}

/** 1500 → "1.5 s", 42 → "42 ms". */
export function secondsPerAnswer(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
}

export interface Bar {
  key: string;
  domain: string;
  color: string;
  /** The pass rate it shows. */
  rate: number;
  x: number;
  y: number;
  width: number;
  height: number;
  /** The interval's whisker, in chart coordinates (absent without an interval). */
  low: number | null;
  high: number | null;
  title: string;
}

export interface Chart {
  width: number;
  height: number;
  /** The plot area. */
  left: number;
  top: number;
  bottom: number;
  right: number;
  /** Gridlines: value and y. */
  ticks: { value: number; y: number }[];
  /** Group labels: domain and the x of its centre. */
  groups: { domain: string; x: number }[];
  bars: Bar[];
}

/** Grouped bars: one group per domain, one bar per row in each, pass rate on the y axis. */
export function barChart(table: ScoreTable, width = 760, height = 250): Chart {
  const left = 44;
  const right = width - 8;
  const top = 18;
  const bottom = height - 28;
  const y = (v: number) => bottom - v * (bottom - top);
  const groupWidth = (right - left) / Math.max(1, table.domains.length);
  const n = Math.max(1, table.rows.length);
  const barWidth = Math.min(44, (groupWidth * 0.74) / n);
  const bars: Bar[] = [];
  const groups = table.domains.map((domain, g) => {
    const centre = left + groupWidth * (g + 0.5);
    const start = centre - (barWidth * n) / 2;
    table.rows.forEach((row, i) => {
      const s = row.cells[domain];
      if (!s) return;
      bars.push({
        key: row.key,
        domain,
        color: SERIES_COLORS[i % SERIES_COLORS.length],
        rate: s.rate,
        x: start + i * barWidth + 1,
        y: y(s.rate),
        width: Math.max(1, barWidth - 2),
        height: Math.max(0, bottom - y(s.rate)),
        low: s.low === null ? null : y(s.low),
        high: s.high === null ? null : y(s.high),
        title: `${row.key} · ${domain}: ${scoreTitle(s)}`,
      });
    });
    return { domain, x: centre };
  });
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((value) => ({ value, y: y(value) }));
  return { width, height, left, top, bottom, right, ticks, groups, bars };
}
