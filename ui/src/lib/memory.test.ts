import { describe, expect, it } from "vitest";
import { embeddingLine, fileName, highlightTerms, markedTerms, indexReportLine, kindLabel, memoryChoiceLabel, openLabel, relativePath, rootFacts, summaryPlacement, targetOf, whyLines } from "./memory";

describe("memory helpers", () => {
  it("shortens the runtime's why lines to their rankings", () => {
    const lines = whyLines(["words (#1): the …[lighthouse] keeper…", "meaning (#2): 63% similar", "something else"]);
    expect(lines.map((l) => [l.how, l.rank, l.label])).toEqual([
      ["words", 1, "ranked #1"],
      ["meaning", 2, "63% similar · #2"],
      ["other", null, "something else"],
    ]);
    expect(lines[0].full).toBe("words (#1): the …[lighthouse] keeper…");
  });

  it("names kinds and where they open", () => {
    expect(kindLabel("chunk")).toBe("Document");
    expect(kindLabel("message")).toBe("Chat");
    expect(targetOf({ kind: "message", refId: 7, sessionId: "s1", location: null })).toEqual({ to: "message", sessionId: "s1", messageId: 7 });
    expect(targetOf({ kind: "capture", refId: 3, sessionId: null, location: "3" })).toEqual({ to: "capture", id: 3 });
    expect(targetOf({ kind: "chunk", refId: 9, sessionId: null, location: "/notes/a.md" })).toEqual({ to: "document", path: "/notes/a.md" });
    expect(targetOf({ kind: "task", refId: 1, sessionId: null, location: "t-1" })).toEqual({ to: "task", id: "t-1" });
    expect(targetOf({ kind: "message", refId: 1, sessionId: null, location: null })).toBeNull();
    expect(openLabel({ to: "document", path: "/a" })).toBe("Show the document");
    expect(openLabel(null)).toBe("");
  });

  it("shows paths by file name or relative to their folder", () => {
    expect(fileName("/home/a/notes/plan.md")).toBe("plan.md");
    expect(relativePath("/home/a/notes", "/home/a/notes/sub/plan.md")).toBe("sub/plan.md");
    expect(relativePath("/home/a/notes/", "/home/a/notes/plan.md")).toBe("plan.md");
    expect(relativePath("/home/a/plan.md", "/home/a/plan.md")).toBe("plan.md");
    expect(relativePath("/x", "/y/z.md")).toBe("/y/z.md");
  });

  it("says how far embedding has got", () => {
    expect(embeddingLine(12, 40)).toBe("12 of 40 texts searchable by meaning.");
    expect(embeddingLine(40, 40)).toBe("All 40 texts searchable by meaning.");
    expect(embeddingLine(0, 0)).toMatch(/Nothing stored yet/);
  });

  it("labels a session's memory switch with the global default", () => {
    expect(memoryChoiceLabel(null, true)).toBe("Default (on)");
    expect(memoryChoiceLabel(null, false)).toBe("Default (off)");
    expect(memoryChoiceLabel(false, true)).toBe("Off");
  });

  it("places the summary after the last message it covers", () => {
    expect(summaryPlacement([1, 2, 5, 6, 9], 5)).toEqual({ index: 2, covered: 3 });
    expect(summaryPlacement([10, 11], 5)).toEqual({ index: -1, covered: 0 });
    expect(summaryPlacement([1, 2, -99], 100)).toEqual({ index: 1, covered: 2 });
  });

  it("describes folders and what indexing did", () => {
    expect(rootFacts({ indexed: 2, chunks: 5, bytes: 3200, skipped: 1 })).toBe("2 files · 5 chunks · 3.2 KB · 1 skipped");
    expect(rootFacts({ indexed: 1, chunks: 1, bytes: 10, skipped: 0 })).toBe("1 file · 1 chunk · 10 B");
    expect(indexReportLine({ added: 2, updated: 0, unchanged: 1, removed: 0, skipped: [["a", "binary"]] })).toBe("Read: 2 new, 1 unchanged, 1 skipped.");
    expect(indexReportLine({ added: 0, updated: 0, unchanged: 0, removed: 0, skipped: [] })).toBe("No files found.");
  });

  it("highlights a passage's matched words in the whole text", () => {
    expect(markedTerms("# [Seville] [marmalade] Boil 1 kg of [Seville] oranges")).toEqual(["seville", "marmalade"]);
    expect(markedTerms("no marks")).toEqual([]);
    const parts = highlightTerms("Seville oranges; seville-style marmalade, not Sevilles.", ["seville", "marmalade"]);
    expect(parts.filter((p) => p.hit).map((p) => p.text)).toEqual(["Seville", "seville", "marmalade"]);
    expect(parts.map((p) => p.text).join("")).toBe("Seville oranges; seville-style marmalade, not Sevilles.");
    expect(highlightTerms("a.b", ["a.b"])).toEqual([{ text: "a.b", hit: true }]);
    expect(highlightTerms("plain", [])).toEqual([{ text: "plain", hit: false }]);
  });
});
