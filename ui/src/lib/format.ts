// Small pure helpers for what the window shows.

/** The per-message badge: model, tokens per second and latency. */
export function badge(m: {
  model?: string | null;
  tokensPerSecond?: number | null;
  latencyMs?: number | null;
  completionTokens?: number | null;
  costUsd?: number | null;
  mode?: string | null;
}): string[] {
  const parts: string[] = [];
  if (m.model) parts.push(m.model);
  if (m.mode === "fanout") parts.push("fan-out");
  if (m.mode === "refine") parts.push("refined");
  if (m.tokensPerSecond != null && Number.isFinite(m.tokensPerSecond)) {
    parts.push(`${m.tokensPerSecond >= 100 ? Math.round(m.tokensPerSecond) : m.tokensPerSecond.toFixed(1)} tok/s`);
  }
  if (m.completionTokens != null) parts.push(`${m.completionTokens} tokens`);
  if (m.latencyMs != null) parts.push(duration(m.latencyMs));
  if (m.costUsd != null && m.costUsd > 0) parts.push(`$${m.costUsd < 0.01 ? m.costUsd.toFixed(4) : m.costUsd.toFixed(2)}`);
  return parts;
}

/** 850 ms, 1.2 s, 2 min 5 s. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** "just now", "5 min ago", "yesterday", or a date. */
export function relativeTime(iso: string, now: Date = new Date()): string {
  const t = new Date(iso);
  const s = (now.getTime() - t.getTime()) / 1000;
  if (!Number.isFinite(s)) return "";
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400 && t.getDate() === now.getDate()) return `${Math.floor(s / 3600)} h ago`;
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (t.toDateString() === yesterday.toDateString()) return "yesterday";
  return t.toLocaleDateString(undefined, { month: "short", day: "numeric", year: t.getFullYear() === now.getFullYear() ? undefined : "numeric" });
}

/** Splits a search snippet whose matches are wrapped in [ and ] into marked parts. */
export function snippetParts(snippet: string): { text: string; hit: boolean }[] {
  const parts: { text: string; hit: boolean }[] = [];
  const re = /\[([^\]]*)\]/g;
  let last = 0;
  for (let m = re.exec(snippet); m; m = re.exec(snippet)) {
    if (m.index > last) parts.push({ text: snippet.slice(last, m.index), hit: false });
    parts.push({ text: m[1], hit: true });
    last = m.index + m[0].length;
  }
  if (last < snippet.length) parts.push({ text: snippet.slice(last), hit: false });
  return parts;
}

/** A session title from the first message: one line, at most 48 characters. */
export function titleFrom(text: string): string {
  const line = text.trim().split(/\r?\n/)[0].replace(/\s+/g, " ");
  if (!line) return "New chat";
  return line.length > 48 ? `${line.slice(0, 47).trimEnd()}…` : line;
}

/** 1.2 GB, 220 KB. */
export function bytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** The current time as RFC 3339. */
export function nowIso(): string {
  return new Date().toISOString();
}

/** An accelerator as a person reads it: `CommandOrControl+Shift+M` → `Ctrl+Shift+M`. */
export function shortcutLabel(accelerator: string): string {
  return accelerator
    .split("+")
    .map((k) => k.trim())
    .filter(Boolean)
    .map((k) => ({ commandorcontrol: "Ctrl", cmdorctrl: "Ctrl", control: "Ctrl", ctrl: "Ctrl", super: "Super", alt: "Alt", shift: "Shift" })[k.toLowerCase()] ?? k)
    .join("+");
}
