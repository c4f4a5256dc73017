// Turning OCR words into a Markdown table when the text is laid out in columns.
import type { WordInfo } from "../bindings";

/** Cells of one OCR line: words split where the horizontal gap is wide. */
function cells(words: WordInfo[]): { text: string; left: number; right: number }[] {
  const sorted = [...words].sort((a, b) => a.bbox.x - b.bbox.x);
  const heights = sorted.map((w) => w.bbox.height).sort((a, b) => a - b);
  const gapLimit = Math.max(12, 1.2 * heights[Math.floor(heights.length / 2)]);
  const out: { text: string; left: number; right: number }[] = [];
  for (const w of sorted) {
    const last = out[out.length - 1];
    if (last && w.bbox.x - last.right <= gapLimit) {
      last.text += ` ${w.text}`;
      last.right = w.bbox.x + w.bbox.width;
    } else {
      out.push({ text: w.text, left: w.bbox.x, right: w.bbox.x + w.bbox.width });
    }
  }
  return out;
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, "\\|");
}

/**
 * A Markdown table of the words when they form one: at least two lines, every line split
 * into the same number (two or more) of cells whose left edges line up. Otherwise null.
 */
export function markdownTable(words: WordInfo[]): string | null {
  const byLine = new Map<number, WordInfo[]>();
  for (const w of words) {
    if (!w.text.trim()) continue;
    byLine.set(w.line, [...(byLine.get(w.line) ?? []), w]);
  }
  const rows = [...byLine.entries()].sort((a, b) => a[0] - b[0]).map(([, ws]) => cells(ws));
  if (rows.length < 2) return null;
  const columns = rows[0].length;
  if (columns < 2 || rows.some((r) => r.length !== columns)) return null;
  // Columns line up: each cell starts near the same x as the first row's, within the
  // width of a short word, or cells are right-aligned (numbers).
  const tolerance = 40;
  for (let c = 0; c < columns; c++) {
    const lefts = rows.map((r) => r[c].left);
    const rights = rows.map((r) => r[c].right);
    const spread = (xs: number[]) => Math.max(...xs) - Math.min(...xs);
    if (spread(lefts) > tolerance && spread(rights) > tolerance) return null;
  }
  const line = (r: { text: string }[]) => `| ${r.map((c) => escapeCell(c.text)).join(" | ")} |`;
  return [line(rows[0]), `|${" --- |".repeat(columns)}`, ...rows.slice(1).map(line)].join("\n");
}
