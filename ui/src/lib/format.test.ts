import { describe, expect, it } from "vitest";
import { badge, bytes, duration, relativeTime, shortcutLabel, snippetParts, titleFrom } from "./format";

describe("format", () => {
  it("builds the message badge from what was measured", () => {
    expect(badge({ model: "tiny", tokensPerSecond: 42.25, latencyMs: 1234, completionTokens: 50 })).toEqual([
      "tiny",
      "42.3 tok/s",
      "50 tokens",
      "1.2 s",
    ]);
    expect(badge({ model: null, tokensPerSecond: null, latencyMs: null })).toEqual([]);
    expect(badge({ tokensPerSecond: 1234.4 })).toEqual(["1234 tok/s"]);
  });

  it("formats durations", () => {
    expect(duration(850)).toBe("850 ms");
    expect(duration(12_400)).toBe("12 s");
    expect(duration(125_000)).toBe("2 min 5 s");
  });

  it("splits search snippets into marked parts", () => {
    expect(snippetParts("…the [museum] opens [Monday]s")).toEqual([
      { text: "…the ", hit: false },
      { text: "museum", hit: true },
      { text: " opens ", hit: false },
      { text: "Monday", hit: true },
      { text: "s", hit: false },
    ]);
    expect(snippetParts("plain")).toEqual([{ text: "plain", hit: false }]);
  });

  it("makes a one-line title from the first message", () => {
    expect(titleFrom("  Hello\nworld ")).toBe("Hello");
    expect(titleFrom("   ")).toBe("New chat");
    expect(titleFrom("x".repeat(80))).toHaveLength(48);
  });

  it("says how long ago", () => {
    const now = new Date("2025-05-10T12:00:00Z");
    expect(relativeTime("2025-05-10T11:59:30Z", now)).toBe("just now");
    expect(relativeTime("2025-05-10T11:30:00Z", now)).toBe("30 min ago");
    expect(relativeTime("not a date", now)).toBe("");
  });

  it("formats sizes", () => {
    expect(bytes(512)).toBe("512 B");
    expect(bytes(220_000)).toBe("220 KB");
    expect(bytes(93_400_000)).toBe("93 MB");
  });
});

describe("shortcutLabel", () => {
  it("writes accelerators the way keyboards are labelled", () => {
    expect(shortcutLabel("CommandOrControl+Shift+M")).toBe("Ctrl+Shift+M");
    expect(shortcutLabel("alt+Space")).toBe("Alt+Space");
    expect(shortcutLabel("")).toBe("");
  });
});
