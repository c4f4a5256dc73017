import { describe, expect, it } from "vitest";
import type { WordInfo } from "../bindings";
import { markdownTable } from "./ocr-table";

function word(text: string, x: number, line: number, width = 8 * text.length): WordInfo {
  return { text, bbox: { x, y: line * 24, width, height: 14 }, confidence: 0.95, line };
}

describe("markdownTable", () => {
  it("turns aligned columns into a Markdown table", () => {
    const words = [
      word("Item", 10, 0), word("Price", 200, 0), word("Qty", 320, 0),
      word("Green", 10, 1), word("tea", 58, 1), word("4.50", 200, 1), word("2", 320, 1),
      word("Coffee", 10, 2), word("12.00", 200, 2), word("1", 320, 2),
    ];
    expect(markdownTable(words)).toBe(
      ["| Item | Price | Qty |", "| --- | --- | --- |", "| Green tea | 4.50 | 2 |", "| Coffee | 12.00 | 1 |"].join("\n"),
    );
  });

  it("returns null for running text", () => {
    const words = [
      word("The", 10, 0), word("quick", 44, 0), word("brown", 92, 0),
      word("fox", 10, 1), word("jumps", 42, 1),
    ];
    expect(markdownTable(words)).toBeNull();
  });

  it("returns null for a single line or ragged columns", () => {
    expect(markdownTable([word("A", 10, 0), word("B", 200, 0)])).toBeNull();
    expect(markdownTable([word("A", 10, 0), word("B", 200, 0), word("C", 10, 1), word("D", 400, 1)])).toBeNull();
  });

  it("escapes pipes in cells", () => {
    const words = [word("a|b", 10, 0), word("c", 200, 0), word("d", 10, 1), word("e", 200, 1)];
    expect(markdownTable(words)).toContain("a\\|b");
  });
});
