// An in-memory task queue for the fake API: two templates (one with an approval step),
// runs whose steps tests advance by hand, approvals, cancel, retry, reorder and pause.
import type { ParamFieldInfo, QueueInfo, RunInfo, ScheduleInfo, TaskEventInfo, TaskInfo, TasksChanged, TemplateInfo } from "./api";
import { ApiError } from "./api";

interface StepSpec {
  step: string;
  kind: string;
  after?: string[];
}

interface FakeTemplate extends TemplateInfo {
  specs: StepSpec[];
}

const field = (name: string, kind: string, extra: Partial<ParamFieldInfo> = {}): ParamFieldInfo => ({
  name,
  kind,
  title: null,
  description: null,
  default: null,
  required: false,
  choices: [],
  ...extra,
});

/** The fake's templates. */
export const FAKE_TEMPLATES: FakeTemplate[] = [
  {
    key: "meeting-notes@1",
    name: "meeting-notes",
    description: "Transcribe a meeting recording, summarise it, list the action items and write both into one Markdown file.",
    fields: [
      field("audio", "string", { title: "Recording", description: "The meeting's audio file (WAV, MP3, FLAC or OGG).", required: true }),
      field("language", "string", { title: "Language", description: "The spoken language's code (en, de, …), or auto.", default: '"auto"' }),
      field("speakers", "integer", { title: "Speakers", description: "How many people speak.", default: "2" }),
      field("detail", "string", { title: "Summary", choices: ["short", "detailed"], default: '"short"' }),
      field("timestamps", "boolean", { title: "Timestamps", description: "Keep the times in the transcript.", default: "false" }),
      field("keywords", "array", { title: "Keywords", description: "Words to listen for.", default: '["Baton"]' }),
    ],
    steps: ["transcript", "summary", "actions", "notes"],
    specs: [
      { step: "transcript", kind: "transcribe" },
      { step: "summary", kind: "chat", after: ["transcript"] },
      { step: "actions", kind: "chat", after: ["transcript"] },
      { step: "notes", kind: "write", after: ["summary", "actions"] },
    ],
  },
  {
    key: "reviewed-post@1",
    name: "reviewed-post",
    description: "Draft a short post with a chat model, let a person approve or edit it, then save it.",
    fields: [
      field("topic", "string", { title: "Topic", required: true }),
      field("words", "number", { title: "Length", description: "About how many words.", default: "120" }),
      field("style", "object", { title: "Style", description: "Extra instructions for the draft." }),
    ],
    steps: ["draft", "review", "publish"],
    specs: [
      { step: "draft", kind: "chat" },
      { step: "review", kind: "approval", after: ["draft"] },
      { step: "publish", kind: "write", after: ["review"] },
    ],
  },
];

const RESOURCE: Record<string, string> = { chat: "chat:auto", transcribe: "stt", approval: "person", write: "none" };
const FINISHED = ["succeeded", "failed", "cancelled", "skipped"];

interface FakeRun {
  id: string;
  name: string;
  template: string | null;
  origin: string;
  createdMs: number;
  tasks: TaskInfo[];
}

export function fakeTasks(opts: { queueError?: string } = {}) {
  const runs: FakeRun[] = [];
  const order: string[] = []; // queue order of task ids
  const events = new Map<string, TaskEventInfo[]>();
  const logs = new Map<string, string[]>();
  const handlers = new Set<(e: TasksChanged) => void>();
  let paused = false;
  let nextRun = 1;
  let nextTask = 1;
  let clock = Date.UTC(2025, 2, 4, 9, 0, 0);
  const calls = {
    started: [] as { key: string; params: Record<string, unknown> }[],
    approved: [] as { id: string; edited: string | null }[],
    rejected: [] as { id: string; reason: string }[],
    cancelled: [] as string[],
    retried: [] as string[],
    moved: [] as { id: string; before: string | null }[],
    paused: [] as boolean[],
  };

  const all = () => runs.flatMap((r) => r.tasks);
  const approvals = () => all().filter((t) => t.state === "waiting_approval");
  const find = (id: string) => {
    const t = all().find((x) => x.id === id);
    if (!t) throw new ApiError({ kind: "notFound", message: `no task or run matches \`${id}\`` });
    return t;
  };
  const runOf = (t: TaskInfo) => runs.find((r) => r.id === t.runId)!;
  const copy = (t: TaskInfo): TaskInfo => ({ ...t, after: [...t.after] });
  const emit = () => {
    const n = approvals().length;
    setTimeout(() => handlers.forEach((h) => h({ approvals: n })), 0);
  };

  function move(t: TaskInfo, to: string, reason: string, extra: Partial<TaskInfo> = {}) {
    clock += 1000;
    const from = t.state;
    Object.assign(t, extra, { state: to });
    if (to === "running") t.attempts += 1;
    if (FINISHED.includes(to)) {
      t.finishedMs = clock;
      t.progress = null;
    }
    events.get(t.id)!.push({ at: clock, from, to, attempt: t.attempts, reason });
    logs.get(t.id)!.push(`INFO ${t.step}: ${from} → ${to} (${reason})`);
  }

  /** The steps that wait, directly or not, for `t`. */
  function dependants(t: TaskInfo): TaskInfo[] {
    const run = runOf(t);
    const out: TaskInfo[] = [];
    const walk = (step: string) => {
      for (const d of run.tasks.filter((x) => x.after.includes(step))) {
        if (!out.includes(d)) {
          out.push(d);
          walk(d.step);
        }
      }
    };
    walk(t.step);
    return out;
  }

  function runState(r: FakeRun): string {
    const states = r.tasks.map((t) => t.state);
    if (states.includes("waiting_approval")) return "waiting_approval";
    if (states.some((s) => !FINISHED.includes(s))) return "running";
    if (states.includes("failed")) return "failed";
    if (states.includes("cancelled")) return "cancelled";
    return "succeeded";
  }

  function runInfo(r: FakeRun): RunInfo {
    return {
      id: r.id,
      name: r.name,
      template: r.template,
      origin: r.origin,
      state: runState(r),
      done: r.tasks.filter((t) => FINISHED.includes(t.state)).length,
      total: r.tasks.length,
      createdMs: r.createdMs,
    };
  }

  /** Typing by the schema, as the backend does with the form's text. */
  function typed(t: FakeTemplate, given: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(given)) {
      const f = t.fields.find((x) => x.name === k);
      if (!f) throw new ApiError({ kind: "invalid", message: `\`${k}\` is not a parameter of ${t.key}; it takes: ${t.fields.map((x) => x.name).join(", ")}` });
      if (v === "") continue;
      if (typeof v !== "string") {
        out[k] = v;
      } else if (f.kind === "integer" || f.kind === "number") {
        const n = Number(v);
        if (!Number.isFinite(n) || (f.kind === "integer" && !Number.isInteger(n))) {
          throw new ApiError({ kind: "invalid", message: `parameter \`${k}\` is a ${f.kind === "integer" ? "whole number" : "number"}, not \`${v}\`` });
        }
        out[k] = n;
      } else if (f.kind === "boolean") {
        out[k] = ["true", "yes", "1", "on"].includes(v);
      } else if (f.kind === "array" || f.kind === "object") {
        try {
          out[k] = JSON.parse(v);
        } catch (e) {
          throw new ApiError({ kind: "invalid", message: `parameter \`${k}\` is JSON (${f.kind}): ${String(e)}` });
        }
      } else {
        out[k] = v;
      }
    }
    for (const f of t.fields) {
      if (f.required && !(f.name in out)) throw new ApiError({ kind: "invalid", message: `"${f.name}" is a required property` });
      if (f.choices.length && f.name in out && !f.choices.includes(String(out[f.name]))) {
        throw new ApiError({ kind: "invalid", message: `"${String(out[f.name])}" is not one of ${f.choices.map((c) => JSON.stringify(c)).join(", ")}` });
      }
    }
    return out;
  }

  /** Adds a run of a template (as the app or another origin would). */
  function addRun(key: string, params: Record<string, unknown>, origin = "app"): string {
    const t = FAKE_TEMPLATES.find((x) => x.key === key);
    if (!t) throw new ApiError({ kind: "notFound", message: `there is no template \`${key}\`` });
    const values = typed(t, params);
    clock += 1000;
    const run: FakeRun = { id: `run-${nextRun++}`, name: t.name, template: t.key, origin, createdMs: clock, tasks: [] };
    for (const s of t.specs) {
      const id = `task-${nextTask++}`;
      const task: TaskInfo = {
        id,
        runId: run.id,
        runName: run.name,
        step: s.step,
        kind: s.kind,
        state: s.after?.length ? "queued" : "ready",
        resource: RESOURCE[s.kind] ?? "none",
        priority: 0,
        attempts: 0,
        maxAttempts: 3,
        progress: null,
        error: null,
        deadlineMissed: false,
        after: [...(s.after ?? [])],
        input: JSON.stringify({ step: s.step, params: values }, null, 2),
        outputText: null,
        output: null,
        createdMs: clock,
        finishedMs: null,
      };
      run.tasks.push(task);
      order.push(id);
      events.set(id, [{ at: clock, from: null, to: task.state, attempt: 0, reason: "created" }]);
      logs.set(id, []);
    }
    runs.unshift(run);
    emit();
    return run.id;
  }

  /**
   * One step of the worker: running steps succeed (output "<step> done"), then steps whose
   * dependencies all succeeded start (an approval step waits for a person instead). Nothing
   * new starts while the queue is paused.
   */
  function advance() {
    for (const t of all().filter((x) => x.state === "running")) {
      const text = `${t.step} done`;
      move(t, "succeeded", "finished", { outputText: text, output: JSON.stringify({ text }, null, 2) });
    }
    if (!paused) {
      for (const run of [...runs].reverse()) {
        for (const t of run.tasks) {
          if (t.state !== "queued" && t.state !== "ready") continue;
          const deps = run.tasks.filter((d) => t.after.includes(d.step));
          if (deps.every((d) => d.state === "succeeded")) {
            if (t.kind === "approval") move(t, "waiting_approval", "waits for a person");
            else move(t, "running", "claimed by the worker", { progress: 0.25 });
          }
        }
      }
    }
    emit();
  }

  /** Sets a step's state (and anything else) directly. */
  function set(runId: string, step: string, patch: Partial<TaskInfo>) {
    const t = runs.find((r) => r.id === runId)?.tasks.find((x) => x.step === step);
    if (!t) throw new Error(`no step ${step} in ${runId}`);
    if (patch.state && patch.state !== t.state) move(t, patch.state, "set by the test", patch);
    else Object.assign(t, patch);
    emit();
  }

  const api = {
    taskQueue: async (): Promise<QueueInfo> => {
      if (opts.queueError) throw new ApiError({ kind: "store", message: opts.queueError });
      const waiting = all()
        .filter((t) => ["running", "ready", "queued"].includes(t.state))
        .sort((a, b) => Number(b.state === "running") - Number(a.state === "running") || order.indexOf(a.id) - order.indexOf(b.id));
      return { paused, runs: runs.map(runInfo), waiting: waiting.map(copy), approvals: approvals().map(copy) };
    },
    runTasks: async (runId: string) => {
      const run = runs.find((r) => r.id === runId);
      if (!run) throw new ApiError({ kind: "notFound", message: `no run matches \`${runId}\`` });
      return run.tasks.map(copy);
    },
    taskDetail: async (id: string) => {
      const t = find(id);
      return { task: copy(t), events: events.get(id)!.map((e) => ({ ...e })), logs: [...logs.get(id)!] };
    },
    taskTemplates: async (): Promise<TemplateInfo[]> => FAKE_TEMPLATES.map((t) => ({ key: t.key, name: t.name, description: t.description, fields: t.fields.map((f) => ({ ...f })), steps: [...t.steps] })),
    startTemplate: async (key: string, params: Record<string, unknown>) => {
      calls.started.push({ key, params: JSON.parse(JSON.stringify(params)) });
      return addRun(key, params);
    },
    cancelTask: async (id: string) => {
      calls.cancelled.push(id);
      const run = runs.find((r) => r.id === id);
      const targets = run ? run.tasks : [find(id), ...dependants(find(id))];
      let n = 0;
      for (const t of targets) {
        if (FINISHED.includes(t.state)) continue;
        move(t, "cancelled", "cancelled in the app");
        n++;
      }
      emit();
      return n;
    },
    retryTask: async (id: string) => {
      const t = find(id);
      if (!["failed", "cancelled", "skipped"].includes(t.state)) {
        throw new ApiError({ kind: "invalid", message: `task ${id} is ${t.state}; only failed, cancelled or skipped tasks can be retried` });
      }
      calls.retried.push(id);
      move(t, "queued", "retried in the app", { error: null, finishedMs: null });
      emit();
    },
    approveTask: async (id: string, edited: string | null) => {
      const t = find(id);
      if (t.state !== "waiting_approval") throw new ApiError({ kind: "invalid", message: `task ${id} is ${t.state}, not waiting for approval` });
      calls.approved.push({ id, edited });
      const before = runOf(t).tasks.filter((d) => t.after.includes(d.step)).map((d) => d.outputText ?? "").join("\n\n");
      const text = edited ?? before;
      move(t, "succeeded", "approved in the app", { outputText: text, output: JSON.stringify({ text, approved_by: "the app" }, null, 2) });
      emit();
    },
    rejectTask: async (id: string, reason: string) => {
      const t = find(id);
      if (t.state !== "waiting_approval") throw new ApiError({ kind: "invalid", message: `task ${id} is ${t.state}, not waiting for approval` });
      calls.rejected.push({ id, reason });
      move(t, "failed", reason || "rejected in the app", { error: `rejected: ${reason || "rejected in the app"}` });
      for (const d of dependants(t)) if (!FINISHED.includes(d.state)) move(d, "skipped", "a step it waits for failed");
      emit();
    },
    moveTask: async (id: string, before: string | null) => {
      find(id);
      calls.moved.push({ id, before });
      order.splice(order.indexOf(id), 1);
      const at = before === null ? -1 : order.indexOf(before);
      if (at < 0) order.push(id);
      else order.splice(at, 0, id);
      emit();
    },
    setQueuePaused: async (p: boolean) => {
      calls.paused.push(p);
      paused = p;
      emit();
    },
    taskSchedules: async (): Promise<ScheduleInfo[]> => {
      const day = 86_400_000;
      const first = Date.UTC(2030, 0, 7, 7, 0, 0);
      return [
        { name: "morning-digest", cron: "0 8 * * 1-5", timezone: "Europe/Berlin", template: "daily-digest", enabled: true, description: "At 08:00, Monday through Friday", upcoming: [first, first + day, first + 2 * day] },
        { name: "weekly-compare", cron: "30 18 * * 5", timezone: "UTC", template: "compare-models", enabled: false, description: "At 18:30, only on Friday", upcoming: [] },
      ];
    },
    onTasksChanged: async (handler: (e: TasksChanged) => void) => {
      handlers.add(handler);
      return () => {
        handlers.delete(handler);
      };
    },
  };

  return {
    api,
    calls,
    runs,
    addRun,
    advance,
    set,
    /** Whether something listens to task changes. */
    listening: () => handlers.size,
  };
}
