// Pure helpers for what the window shows of memory: search hits and why they matched,
// where a hit or an answer's source opens, the summary of older turns, documents.
import { bytes } from "./format";

/** What memory holds: conversation messages, screen captures, document chunks, task outputs. */
export type MemoryKind = "message" | "capture" | "chunk" | "task";

/** The search's kind filter, in the order it is offered. */
export const SEARCH_KINDS: { kind: MemoryKind | null; label: string; title: string }[] = [
  { kind: null, label: "All", title: "Everything Baton has stored" },
  { kind: "message", label: "Chats", title: "Conversations" },
  { kind: "capture", label: "Captures", title: "Screen captures read by OCR" },
  { kind: "chunk", label: "Docs", title: "Documents added in Settings → Memory" },
  { kind: "task", label: "Tasks", title: "Outputs of tasks" },
];

const KIND_LABELS: Record<string, string> = {
  message: "Chat",
  capture: "Capture",
  chunk: "Document",
  task: "Task",
};

/** A kind as a person reads it: `chunk` → "Document". */
export function kindLabel(kind: string): string {
  return KIND_LABELS[kind] ?? kind;
}

/** One reason a hit matched, as the window shows it. */
export interface WhyLine {
  /** `words`, `meaning`, or `other` for a line that is not in either form. */
  how: "words" | "meaning" | "other";
  /** Its place in that ranking (1 = best), when given. */
  rank: number | null;
  /** Short: `ranked #1`, `63% similar`. */
  label: string;
  /** The line as the runtime wrote it (for a tooltip). */
  full: string;
}

/**
 * The runtime's why lines (`words (#1): …[match]…`, `meaning (#2): 63% similar`) made
 * short: the words' passage is already shown with the hit, so only the ranking stays.
 */
export function whyLines(why: string[]): WhyLine[] {
  return why.map((full) => {
    const m = /^(words|meaning) \(#(\d+)\):\s*(.*)$/s.exec(full.trim());
    if (!m) return { how: "other", rank: null, label: full, full };
    const how = m[1] as "words" | "meaning";
    const rank = Number(m[2]);
    const label = how === "meaning" && m[3] ? `${m[3]} · #${rank}` : `ranked #${rank}`;
    return { how, rank, label, full };
  });
}

/** The last part of a path: `/home/a/notes/plan.md` → `plan.md`. */
export function fileName(path: string): string {
  const parts = path.split(/[\\/]/).filter(Boolean);
  return parts.at(-1) ?? path;
}

/** A path under a root, shown relative to it (the root itself when it is a file). */
export function relativePath(root: string, path: string): string {
  const base = root.replace(/[\\/]+$/, "");
  if (path === base) return fileName(path);
  if (path.startsWith(`${base}/`) || path.startsWith(`${base}\\`)) return path.slice(base.length + 1);
  return path;
}

/** Where a search hit or an answer's source opens. */
export type MemoryTarget =
  | { to: "message"; sessionId: string; messageId: number }
  | { to: "capture"; id: number }
  | { to: "document"; path: string }
  | { to: "task"; id: string }
  | null;

/** Where a hit or source opens; null when it names nothing that can be opened. */
export function targetOf(item: { kind: string; refId: number; sessionId: string | null; location: string | null }): MemoryTarget {
  switch (item.kind) {
    case "message":
      return item.sessionId ? { to: "message", sessionId: item.sessionId, messageId: item.refId } : null;
    case "capture": {
      const id = item.location !== null && /^\d+$/.test(item.location) ? Number(item.location) : item.refId;
      return { to: "capture", id };
    }
    case "chunk":
      return item.location ? { to: "document", path: item.location } : null;
    case "task":
      return item.location ? { to: "task", id: item.location } : null;
    default:
      return null;
  }
}

/** The button that opens a target. */
export function openLabel(target: MemoryTarget): string {
  switch (target?.to) {
    case "message":
      return "Open the chat";
    case "capture":
      return "Open the capture";
    case "document":
      return "Show the document";
    case "task":
      return "Open the task";
    default:
      return "";
  }
}

/** "12 of 40 texts searchable by meaning". */
export function embeddingLine(embedded: number, total: number): string {
  if (total === 0) return "Nothing stored yet: new conversations, captures and documents are searchable as they arrive.";
  if (embedded >= total) return `All ${total} text${total === 1 ? "" : "s"} searchable by meaning.`;
  return `${embedded} of ${total} texts searchable by meaning.`;
}

/** A session's memory switch in words, given the global setting. */
export function memoryChoiceLabel(memory: boolean | null, globalOn: boolean): string {
  if (memory === null) return `Default (${globalOn ? "on" : "off"})`;
  return memory ? "On" : "Off";
}

/**
 * Where the summary of older turns goes among the messages shown: after the last message it
 * covers (`index` of that message; -1 to put it before all of them), and how many of the
 * shown messages it stands for.
 */
export function summaryPlacement(messageIds: number[], throughId: number): { index: number; covered: number } {
  let index = -1;
  let covered = 0;
  messageIds.forEach((id, i) => {
    // Optimistic messages not yet stored have negative ids: never covered.
    if (id > 0 && id <= throughId) {
      index = i;
      covered++;
    }
  });
  return { index, covered };
}

/** A folder's figures: "2 files · 5 chunks · 3.2 KB · 1 skipped". */
export function rootFacts(r: { indexed: number; chunks: number; bytes: number; skipped: number }): string {
  const parts = [`${r.indexed} file${r.indexed === 1 ? "" : "s"}`, `${r.chunks} chunk${r.chunks === 1 ? "" : "s"}`, bytes(r.bytes)];
  if (r.skipped > 0) parts.push(`${r.skipped} skipped`);
  return parts.join(" · ");
}

/** What adding or re-reading a folder did, in one line. */
export function indexReportLine(r: { added: number; updated: number; unchanged: number; removed: number; skipped: unknown[] }): string {
  const parts: string[] = [];
  if (r.added) parts.push(`${r.added} new`);
  if (r.updated) parts.push(`${r.updated} changed`);
  if (r.unchanged) parts.push(`${r.unchanged} unchanged`);
  if (r.removed) parts.push(`${r.removed} gone`);
  if (r.skipped.length) parts.push(`${r.skipped.length} skipped`);
  if (parts.length === 0) return "No files found.";
  return `Read: ${parts.join(", ")}.`;
}

/** The words a passage marks as matched (`…[Seville] [marmalade]…` → Seville, marmalade). */
export function markedTerms(passage: string): string[] {
  const terms = new Set<string>();
  for (const m of passage.matchAll(/\[([^\]]+)\]/g)) terms.add(m[1].trim().toLowerCase());
  terms.delete("");
  return [...terms];
}

/** Splits `text` into parts, marking every whole-word occurrence of `terms` (any case). */
export function highlightTerms(text: string, terms: string[]): { text: string; hit: boolean }[] {
  const words = terms.filter((t) => t.trim()).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  if (words.length === 0) return text ? [{ text, hit: false }] : [];
  const re = new RegExp(`(?<![\\p{L}\\p{N}])(${words.join("|")})(?![\\p{L}\\p{N}])`, "giu");
  const parts: { text: string; hit: boolean }[] = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    const at = m.index ?? 0;
    if (at > last) parts.push({ text: text.slice(last, at), hit: false });
    parts.push({ text: m[0], hit: true });
    last = at + m[0].length;
  }
  if (last < text.length) parts.push({ text: text.slice(last), hit: false });
  return parts;
}
