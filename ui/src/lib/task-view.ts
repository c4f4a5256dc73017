// Pure helpers for the Tasks view: the "Run a template" form generated from a template's
// parameter fields, and how times read.
import type { ParamFieldInfo } from "./api";
import { relativeTime } from "./format";

/** What a form control holds: text, or a checkbox's state. */
export type FieldValue = string | boolean;

/** The control a field gets. */
export type FieldControl = "text" | "number" | "checkbox" | "select" | "json";

export function fieldControl(f: ParamFieldInfo): FieldControl {
  if (f.kind === "boolean") return "checkbox";
  if (f.choices.length > 0) return "select";
  if (f.kind === "integer" || f.kind === "number") return "number";
  if (f.kind === "array" || f.kind === "object") return "json";
  return "text";
}

/** A field's default (JSON text) as the value of its control; "" or false without one. */
export function initialValue(f: ParamFieldInfo): FieldValue {
  let value: unknown = null;
  if (f.default != null) {
    try {
      value = JSON.parse(f.default);
    } catch {
      value = f.default; // not JSON: take the text as it is
    }
  }
  if (f.kind === "boolean") return value === true || value === "true";
  if (value === null || value === undefined) return "";
  if (f.kind === "array" || f.kind === "object") return typeof value === "string" ? value : JSON.stringify(value);
  return typeof value === "string" ? value : String(value);
}

export function initialValues(fields: ParamFieldInfo[]): Record<string, FieldValue> {
  return Object.fromEntries(fields.map((f) => [f.name, initialValue(f)]));
}

/** The help under an array or object field. */
export function jsonHint(f: ParamFieldInfo): string {
  return f.kind === "array" ? "A JSON list, or values separated by commas." : "A JSON object.";
}

/**
 * The parameters to send: numbers as numbers, booleans as booleans, arrays and objects
 * parsed, empty text left out (so the template's default applies, or the backend says the
 * parameter is required). Fields that cannot be read get a message in `errors`.
 */
export function buildParams(
  fields: ParamFieldInfo[],
  values: Record<string, FieldValue>,
): { params: Record<string, unknown>; errors: Record<string, string> } {
  const params: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const f of fields) {
    const raw = values[f.name] ?? initialValue(f);
    if (typeof raw === "boolean") {
      params[f.name] = raw;
      continue;
    }
    const text = raw.trim();
    if (text === "") continue;
    if (f.kind === "integer") {
      if (/^[-+]?\d+$/.test(text)) params[f.name] = Number(text);
      else errors[f.name] = "Enter a whole number.";
    } else if (f.kind === "number") {
      const n = Number(text);
      if (Number.isFinite(n)) params[f.name] = n;
      else errors[f.name] = "Enter a number.";
    } else if (f.kind === "array") {
      if (!text.startsWith("[")) {
        params[f.name] = text
          .split(/[,\n]/)
          .map((s) => s.trim())
          .filter(Boolean);
        continue;
      }
      const parsed = parseJson(text);
      if (Array.isArray(parsed.value)) params[f.name] = parsed.value;
      else errors[f.name] = parsed.error ?? "Enter a JSON list, like [\"a\", \"b\"].";
    } else if (f.kind === "object") {
      const parsed = parseJson(text);
      if (parsed.value && typeof parsed.value === "object" && !Array.isArray(parsed.value)) params[f.name] = parsed.value;
      else errors[f.name] = parsed.error ?? "Enter a JSON object, like {\"key\": \"value\"}.";
    } else {
      params[f.name] = raw;
    }
  }
  return { params, errors };
}

function parseJson(text: string): { value: unknown; error: string | null } {
  try {
    return { value: JSON.parse(text), error: null };
  } catch (e) {
    return { value: undefined, error: `Not valid JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** "5 min ago", from ms since the epoch. */
export function ago(ms: number, now: Date = new Date()): string {
  return relativeTime(new Date(ms).toISOString(), now);
}

/** "Mar 4, 14:05:09", from ms since the epoch. */
export function stamp(ms: number): string {
  const d = new Date(ms);
  return `${d.toLocaleDateString(undefined, { month: "short", day: "numeric" })}, ${d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" })}`;
}

/** "Tue, Mar 4, 08:00" for a schedule's next times (in this machine's time zone). */
export function nextTime(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** "in 3 h", "in 2 days" for a schedule's next time. */
export function untilTime(ms: number, now: number = Date.now()): string {
  const s = (ms - now) / 1000;
  if (s < 60) return "in under a minute";
  if (s < 3600) return `in ${Math.round(s / 60)} min`;
  if (s < 86_400) return `in ${Math.round(s / 3600)} h`;
  const days = Math.round(s / 86_400);
  return `in ${days} day${days === 1 ? "" : "s"}`;
}

/** Who started a run: "the app", "the CLI", "schedule morning-digest". */
export function originLabel(origin: string): string {
  if (origin.startsWith("schedule:")) return `schedule ${origin.slice("schedule:".length)}`;
  const known: Record<string, string> = { app: "the app", cli: "the CLI", api: "the API" };
  return known[origin] ?? origin;
}
