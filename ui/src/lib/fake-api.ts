// An in-memory BatonApi for unit tests: sessions, messages and a scripted "model".
import type {
  AppAction,
  AppStatus,
  BatonApi,
  DocRootInfo,
  DocumentInfo,
  IndexResult,
  MemoryHitInfo,
  EngineInfo,
  EvalProgressInfo,
  EvalRunInfo,
  EvalScoreInfo,
  FetchProgressInfo,
  MessageInfo,
  ModelChoice,
  ModelFitInfo,
  ModelInfo,
  Preferences,
  ReadAloud,
  SessionInfo,
  SourceInfo,
  StreamEvent,
  TurnResult,
  TurnSummaryInfo,
  VoiceInput,
} from "./api";
import { ApiError } from "./api";
import { fakeTasks } from "./fake-tasks";

export interface FakeOptions {
  startupError?: string;
  /** Tokens the fake model streams; null makes it fail as if no model were registered. */
  tokens?: string[] | null;
  /** Resolve the generation only when stop() is called. */
  waitForStop?: boolean;
  /** Events sent before the tokens (routing steps, a withdrawn partial answer, …). */
  before?: StreamEvent[];
  /** What the "microphone" hears after startListening (then `ended`, unless held). */
  heard?: VoiceInput[];
  /** startListening fails with this error. */
  listenError?: { kind: string; message: string };
  /** Registered models. */
  models?: ModelInfo[];
  /** Chat models for the model choice (none by default: nothing to choose). */
  fits?: ModelFitInfo[];
  /** The config pins this default model (then the choice is made in the config file). */
  pinned?: string | null;
  /** How a model fetch goes: fails (default), succeeds with progress, or waits for a cancel. */
  fetch?: "fail" | "ok" | "wait";
  /** Remote engines already added. */
  engines?: EngineInfo[];
  /** Stored evaluation scores and runs. */
  evalScores?: EvalScoreInfo[];
  evalRuns?: EvalRunInfo[];
  /** startEval waits for cancelEval after its first answer. */
  evalWaits?: boolean;
  /** taskQueue fails with this message. */
  taskQueueError?: string;
  /** Actions waiting for the window when it starts (tray items, `--action`). */
  pendingActions?: AppAction[];
  /** Files that can be added to memory: path → text (null: a binary file, skipped). */
  files?: Record<string, string | null>;
  /** Whether the embedding model is installed (search then also matches by meaning). */
  embeddingModel?: boolean;
  /** Memory sources given with every answer. */
  sources?: SourceInfo[];
}

/** A model's record as listModels returns it. */
export function fakeModel(name: string, extra: Partial<ModelInfo> = {}): ModelInfo {
  return {
    name,
    path: `/models/${name}.gguf`,
    format: "gguf",
    tasks: ["chat"],
    architecture: "llama",
    parameters: 135e6,
    contextLength: 8192,
    quantization: "Q8_0",
    fileSize: 98e6,
    source: null,
    license: null,
    enabled: true,
    ...extra,
  };
}

/** A chat model's fit for the model choice. */
export function fakeFit(name: string, extra: Partial<ModelFitInfo> = {}): ModelFitInfo {
  return { name, size: 5e8, rank: 1, installed: false, fits: true, why: "0.5 GB runs on 2 CPU cores in 0.8 GiB of memory", measuredTokensPerSecond: null, evalPassRate: null, ...extra };
}

/** An evaluation score with its interval. */
export function fakeScore(model: string, domain: string, passed: number, total: number, extra: Partial<EvalScoreInfo> = {}): EvalScoreInfo {
  return { model, mode: "single", domain, passed, total, rate: passed / total, low: Math.max(0, passed / total - 0.2), high: Math.min(1, passed / total + 0.2), meanMs: 1500, tokensPerSecond: 12.5, costUsd: 0, ...extra };
}

/** An engine as listEngines returns it. */
export function fakeEngine(name: string, extra: Partial<EngineInfo> = {}): EngineInfo {
  return {
    name,
    baseUrl: "http://127.0.0.1:11434/v1",
    models: [`${name}/llama3.2`, `${name}/qwen2.5`],
    breaker: "closed",
    failureRate: 0,
    inputUsdPerMtok: 0,
    outputUsdPerMtok: 0,
    keyStore: "none",
    enabled: true,
    addedAt: new Date().toISOString(),
    ...extra,
  };
}

export function fakeApi(opts: FakeOptions = {}) {
  const sessions: SessionInfo[] = [];
  const messages = new Map<string, MessageInfo[]>();
  let nextId = 1;
  let stopper: (() => void) | null = null;
  let prefs: Preferences = {
    theme: "system",
    model: null,
    mode: "single",
    shortcuts: { showWindow: "A", newChat: "B", ocrRegion: "C", pushToTalk: "D" },
    voice: { afterSpeech: "send", autoSpeak: false },
  };
  let voiceHandler: ((e: VoiceInput) => void) | null = null;
  let readHandler: ((e: ReadAloud) => void) | null = null;
  let listening = false;
  const readAloud: string[] = [];
  const endListening = () => {
    if (!listening) return false;
    listening = false;
    setTimeout(() => voiceHandler?.({ kind: "ended", error: null }), 0);
    return true;
  };
  const ratings = new Map<number, number | null>();
  const models: ModelInfo[] = [...(opts.models ?? [])];
  const engines: EngineInfo[] = [...(opts.engines ?? [])];
  /** API keys the window handed over (they must never come back). */
  const keys = new Map<string, string>();
  let chosen: string | null = null;
  let deferred = false;
  const cancelled = new Set<string>();
  let evalCancel: (() => void) | null = null;
  const scores: EvalScoreInfo[] = [...(opts.evalScores ?? [])];
  const runs: EvalRunInfo[] = [...(opts.evalRuns ?? [])];
  const choice = (): ModelChoice => {
    const fits = (opts.fits ?? []).map((f) => ({ ...f, installed: f.installed || models.some((m) => m.name === f.name) }));
    const recommended = fits.find((f) => f.fits)?.name ?? null;
    const current = opts.pinned ?? chosen ?? fits.find((f) => f.installed && f.fits)?.name ?? "tiny";
    return {
      models: fits,
      recommended,
      current,
      pinned: opts.pinned ?? null,
      chosen: chosen !== null,
      ask: !opts.pinned && chosen === null && !deferred && fits.filter((f) => f.fits).length > 1,
      machine: "2 cores, 23 GiB RAM, no GPU",
    };
  };
  const sentModes: string[] = [];
  const tasks = fakeTasks({ queueError: opts.taskQueueError });
  const pendingActions: AppAction[] = [...(opts.pendingActions ?? [])];
  const now = () => new Date().toISOString();
  const memory = { enabled: true, remote: false, embedded: 0, model: opts.embeddingModel ?? false };
  const files: Record<string, string | null> = { ...(opts.files ?? {}) };
  const roots: DocRootInfo[] = [];
  const docs = new Map<number, DocumentInfo[]>();
  /** Summaries of older turns, by session (tests put them here). */
  const summaries = new Map<string, TurnSummaryInfo>();
  const chunksOf = (text: string) => Math.max(1, Math.ceil(text.length / 200));
  const readRoot = (root: DocRootInfo, onProgress: (p: { done: number; total: number }) => void): IndexResult => {
    const under = Object.keys(files).filter((f) => f === root.path || f.startsWith(`${root.path}/`)).sort();
    const before = new Set((docs.get(root.id) ?? []).map((d) => d.path));
    const list: DocumentInfo[] = under.map((path, i) => {
      const text = files[path];
      onProgress({ done: i + 1, total: under.length });
      return {
        id: nextId++,
        path,
        format: path.endsWith(".md") ? "markdown" : path.endsWith(".txt") ? "text" : "other",
        size: text?.length ?? 4096,
        state: text === null ? "skipped" : "indexed",
        reason: text === null ? "a binary file (not text)" : null,
        chunks: text === null ? 0 : chunksOf(text),
        chars: text?.length ?? 0,
        indexedAt: now(),
      };
    });
    docs.set(root.id, list);
    const indexed = list.filter((d) => d.state === "indexed");
    Object.assign(root, { indexed: indexed.length, skipped: list.length - indexed.length, chunks: indexed.reduce((n, d) => n + d.chunks, 0), bytes: indexed.reduce((n, d) => n + d.size, 0) });
    return {
      root: { ...root },
      added: list.filter((d) => !before.has(d.path) && !d.reason).length,
      updated: 0,
      unchanged: list.filter((d) => before.has(d.path)).length,
      removed: [...before].filter((p) => !under.includes(p)).length,
      skipped: list.filter((d) => d.reason).map((d) => ({ path: d.path, reason: d.reason! })),
    };
  };
  const storedTexts = () => [...messages.values()].reduce((n, l) => n + l.length, 0) + roots.reduce((n, r) => n + r.chunks, 0);
  /** Wraps the query's words in [ and ] as the runtime's passages do; null when none is there. */
  const marked = (text: string, q: string): string | null => {
    const words = q.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.some((w) => text.toLowerCase().includes(w))) return null;
    const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    const re = new RegExp(`(${escaped.join("|")})`, "gi");
    return text.replace(re, "[$1]");
  };
  const msg = (sessionId: string, role: "user" | "assistant", content: string, extra: Partial<MessageInfo> = {}): MessageInfo => ({
    id: nextId++,
    sessionId,
    role,
    content,
    model: null,
    promptTokens: null,
    completionTokens: null,
    latencyMs: null,
    firstTokenMs: null,
    tokensPerSecond: null,
    costUsd: null,
    mode: null,
    rating: null,
    sources: [],
    createdAt: now(),
    ...extra,
  });
  const find = (id: string) => {
    const s = sessions.find((x) => x.id === id);
    if (!s) throw new ApiError({ kind: "notFound", message: `no session matches \`${id}\`` });
    return s;
  };

  async function answer(sessionId: string, onEvent: (e: StreamEvent) => void): Promise<TurnResult> {
    if (opts.tokens === null) {
      throw new ApiError({ kind: "modelUnavailable", message: "model `tiny` is not available: it is not registered" });
    }
    const tokens = opts.tokens ?? ["Hello", " there", "!"];
    onEvent({ type: "started", model: "tiny" });
    for (const e of opts.before ?? []) onEvent(e);
    let text = "";
    let cancelled = false;
    for (const t of tokens) {
      onEvent({ type: "token", text: t });
      text += t;
    }
    if (opts.waitForStop) {
      await new Promise<void>((resolve) => (stopper = resolve));
      cancelled = true;
    }
    const a = msg(sessionId, "assistant", text, { model: "tiny", completionTokens: tokens.length, latencyMs: 120, tokensPerSecond: 50, sources: opts.sources ?? [] });
    messages.get(sessionId)!.push(a);
    find(sessionId).messageCount++;
    return { user: null, assistant: a, end: cancelled ? "cancelled" : "stop" };
  }

  const api: BatonApi = {
    status: async (): Promise<AppStatus> => ({
      version: "0.1.0",
      paths: { dataDir: "/data", configFile: "/config.toml", modelsDir: "/models" },
      startupError: opts.startupError ? { kind: "startup", message: opts.startupError } : null,
      defaultModel: choice().current,
      tray: true,
    }),
    listSessions: async () => [...sessions].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt)),
    createSession: async (title) => {
      const s: SessionInfo = { id: `s${nextId++}`, title, model: null, createdAt: now(), updatedAt: now(), messageCount: 0, memory: null };
      sessions.push(s);
      messages.set(s.id, []);
      return s;
    },
    renameSession: async (id, title) => {
      const s = find(id);
      s.title = title;
      return { ...s };
    },
    deleteSession: async (id) => {
      find(id);
      sessions.splice(sessions.findIndex((s) => s.id === id), 1);
      messages.delete(id);
    },
    messages: async (id) => {
      find(id);
      return [...messages.get(id)!];
    },
    search: async (q, kind) => {
      const hits: MemoryHitInfo[] = [];
      const hit = (h: Omit<MemoryHitInfo, "text" | "score" | "similarity" | "why" | "chunkText">, text: string): MemoryHitInfo => {
        const rank = hits.length + 1;
        const why = [`words (#${rank}): ${text}`];
        if (memory.model) why.push(`meaning (#${rank}): ${90 - rank}% similar`);
        return { ...h, text, score: 1 / rank, similarity: memory.model ? (90 - rank) / 100 : null, why, chunkText: h.kind === "chunk" ? (files[h.location ?? ""] ?? null) : null };
      };
      if (!kind || kind === "message") {
        for (const [sid, list] of messages) {
          for (const m of list) {
            const text = marked(m.content, q);
            if (text !== null) hits.push(hit({ kind: "message", refId: m.id, title: find(sid).title, sessionId: sid, location: null, createdAt: m.createdAt }, text));
          }
        }
      }
      if (!kind || kind === "chunk") {
        for (const list of docs.values()) {
          for (const d of list) {
            const text = d.state === "indexed" ? marked(files[d.path] ?? "", q) : null;
            if (text !== null) hits.push(hit({ kind: "chunk", refId: d.id, title: d.path.split("/").at(-1) ?? d.path, sessionId: null, location: d.path, createdAt: d.indexedAt }, text));
          }
        }
      }
      return hits;
    },
    send: async (sessionId, text, _model, mode, onEvent) => {
      sentModes.push(mode);
      const s = find(sessionId);
      const u = msg(sessionId, "user", text);
      messages.get(sessionId)!.push(u);
      s.messageCount++;
      const r = await answer(sessionId, onEvent);
      return { ...r, user: u };
    },
    regenerate: async (sessionId, _model, _mode, onEvent) => answer(sessionId, onEvent),
    rate: async (messageId, rating) => {
      for (const list of messages.values()) {
        const m = list.find((x) => x.id === messageId);
        if (m) m.rating = rating;
      }
      ratings.set(messageId, rating);
    },
    stats: async () => ({
      models: [{ key: "tiny", runs: 3, errors: 1, successRate: 2 / 3, p50Ms: 120, p95Ms: 400, tokensPerSecond: 50, costUsd: 0, thumbsUp: 1, thumbsDown: 0 }],
      modes: [{ key: "single", runs: 3, errors: 1, successRate: 2 / 3, p50Ms: 120, p95Ms: 400, tokensPerSecond: 50, costUsd: 0, thumbsUp: 1, thumbsDown: 0 }],
      routedRated: 1,
      routedUp: 1,
      decisions: 3,
      canaryDecisions: 0,
      engines: [],
    }),
    listEngines: async () => engines.map((e) => ({ ...e })),
    addEngine: async (e) => {
      const name = e.name.trim();
      if (!name || /[\s/]/.test(name)) {
        throw new ApiError({ kind: "model", message: `\`${name}\` cannot name an engine: use a short name without spaces or \`/\` that is not a local model's name` });
      }
      if (!/^https?:\/\//.test(e.baseUrl)) {
        throw new ApiError({ kind: "model", message: `\`${e.baseUrl}\` is not an http(s) URL; give the API's base URL, e.g. http://127.0.0.1:11434/v1` });
      }
      if (e.baseUrl.includes(":9/")) {
        throw new ApiError({ kind: "engine", message: `engine \`${name}\` is unreachable: cannot connect to ${e.baseUrl}; is the server running?` });
      }
      if (e.apiKey) keys.set(name, e.apiKey);
      const added = fakeEngine(name, {
        baseUrl: e.baseUrl.replace(/\/$/, ""),
        models: (e.models.length ? e.models : ["llama3.2", "qwen2.5"]).map((m) => `${name}/${m}`),
        inputUsdPerMtok: e.inputUsdPerMtok,
        outputUsdPerMtok: e.outputUsdPerMtok,
        keyStore: e.apiKey ? "keyring" : "none",
      });
      const at = engines.findIndex((x) => x.name === name);
      if (at >= 0) engines.splice(at, 1, added);
      else engines.push(added);
      return { ...added };
    },
    testEngine: async (name) => {
      const e = engines.find((x) => x.name === name);
      if (!e) throw new ApiError({ kind: "model", message: `there is no engine \`${name}\`; see \`baton engines list\`` });
      if (e.breaker === "open") throw new ApiError({ kind: "engine", message: `engine \`${name}\` is unreachable: connection refused` });
      return { name, ready: true, latencyMs: 42, detail: `${e.models.length} model(s): ${e.models.map((m) => m.split("/")[1]).join(", ")}`, engine: { ...e } };
    },
    removeEngine: async (name) => {
      const at = engines.findIndex((x) => x.name === name);
      if (at < 0) return false;
      engines.splice(at, 1);
      keys.delete(name);
      return true;
    },
    modelChoice: async () => choice(),
    chooseModel: async (name) => {
      if (opts.pinned) throw new ApiError({ kind: "model", message: `the config file /config.toml sets chat.default_model = "${opts.pinned}"; change it there (or set it to "auto")` });
      if (!models.some((m) => m.name === name)) throw new ApiError({ kind: "model", message: `model \`${name}\` is not registered` });
      chosen = name;
      return choice();
    },
    deferModelChoice: async () => {
      deferred = true;
    },
    evalScores: async () => scores.map((x) => ({ ...x })),
    evalRuns: async () => runs.map((x) => ({ ...x })),
    startEval: async (limit, onProgress: (p: EvalProgressInfo) => void) => {
      const chat = models.filter((m) => m.tasks.includes("chat")).map((m) => m.name);
      if (chat.length === 0) throw new ApiError({ kind: "modelUnavailable", message: "no chat model is installed; download one in Settings → Models first" });
      const domains = ["general", "math", "code", "writing", "translation"];
      const per = limit ?? 3;
      const total = domains.length * per * chat.length;
      const runId = runs.length + 1;
      const run: EvalRunInfo = { id: runId, sets: ["general", "arithmetic", "code", "writing", "translation"], targets: chat.map((m) => `${m}/single`), machine: "2 cores, 23 GiB RAM, no GPU", status: "running", startedAt: now(), finishedAt: null, results: 0 };
      runs.unshift(run);
      onProgress({ kind: "started", runId, total, models: chat });
      let done = 0;
      let passed = 0;
      let stopped = false;
      for (const model of chat) {
        for (const domain of domains) {
          for (let i = 0; i < per && !stopped; i++) {
            const ok = i % 2 === 0;
            done++;
            passed += ok ? 1 : 0;
            run.results = done;
            onProgress({ kind: "scored", done, total, passed, model, itemId: `${domain}-00${i + 1}`, domain, ok });
            if (opts.evalWaits && done === 1) {
              await new Promise<void>((resolve) => (evalCancel = resolve));
              stopped = true;
            }
          }
        }
        const all = fakeScore(model, "all", passed, Math.max(1, done));
        scores.push(...domains.map((d) => fakeScore(model, d, Math.ceil(per / 2), per)), all);
      }
      run.status = stopped ? "cancelled" : "done";
      run.finishedAt = now();
      return { runId, answers: done, passed, cancelled: stopped };
    },
    cancelEval: async () => {
      const c = evalCancel;
      evalCancel = null;
      c?.();
      return c !== null;
    },
    stop: async () => {
      const s = stopper;
      stopper = null;
      s?.();
      return s !== null;
    },
    listModels: async () => models.map((m) => ({ ...m })),
    addModel: async () => {
      throw new ApiError({ kind: "model", message: "not a GGUF file" });
    },
    fetchableModels: async () => [],
    fetchModel: async (name, onProgress: (p: FetchProgressInfo) => void) => {
      if ((opts.fetch ?? "fail") === "fail") throw new ApiError({ kind: "model", message: `cannot fetch ${name} in tests` });
      const total = (opts.fits ?? []).find((f) => f.name === name)?.size ?? 1e8;
      onProgress({ model: name, stage: "downloading", done: total / 4, total });
      if (opts.fetch === "wait") {
        await new Promise<void>((resolve) => {
          const poll = () => (cancelled.has(name) ? resolve() : setTimeout(poll, 5));
          poll();
        });
        cancelled.delete(name);
        throw new ApiError({ kind: "model", message: `fetching ${name} was cancelled; the partial download was deleted` });
      }
      onProgress({ model: name, stage: "downloading", done: total, total });
      const m = fakeModel(name, { fileSize: total });
      models.push(m);
      return { ...m };
    },
    cancelFetch: async (name) => {
      cancelled.add(name);
      return true;
    },
    verifyModel: async (name) => ({ name, ok: true, detail: "intact" }),
    removeModel: async () => {},
    getPreferences: async () => ({ preferences: prefs, shortcutErrors: [] }),
    setPreferences: async (p) => {
      prefs = p;
      return { preferences: p, shortcutErrors: [] };
    },
    copy: async () => {},
    takePendingActions: async (): Promise<AppAction[]> => pendingActions.splice(0),
    onAction: async () => () => {},
    startCapture: async () => {},
    showSelection: async () => {},
    pendingCapture: async () => {
      throw new ApiError({ kind: "capture", message: "no screenshot in tests" });
    },
    cancelCapture: async () => {},
    finishCapture: async () => {
      throw new ApiError({ kind: "capture", message: "no screenshot in tests" });
    },
    listCaptures: async () => [],
    getCapture: async (id: number) => {
      throw new ApiError({ kind: "invalid", message: `no capture with id ${id}` });
    },
    deleteCapture: async () => {},
    startListening: async (hold) => {
      if (opts.listenError) throw new ApiError(opts.listenError);
      if (listening) return;
      listening = true;
      const script: VoiceInput[] = [{ kind: "starting", hold }, { kind: "listening", device: "default" }, ...(opts.heard ?? [])];
      setTimeout(() => {
        for (const e of script) voiceHandler?.(e);
        if (!hold) endListening();
      }, 0);
    },
    stopListening: async () => endListening(),
    readAloud: async (text, messageId) => {
      readAloud.push(text);
      readHandler?.({ messageId, playing: true, voice: "espeak-ng", error: null });
    },
    stopReading: async () => {
      readHandler?.({ messageId: null, playing: false, voice: null, error: null });
      return true;
    },
    onVoiceInput: async (handler) => {
      voiceHandler = handler;
      return () => (voiceHandler = null);
    },
    onReadAloud: async (handler) => {
      readHandler = handler;
      return () => (readHandler = null);
    },
    ...tasks.api,
    memoryStatus: async () => ({
      enabled: memory.enabled,
      remote: memory.remote,
      model: "all-minilm-l6-v2",
      modelInstalled: memory.model,
      embedded: memory.model ? Math.min(memory.embedded, storedTexts()) : 0,
      total: storedTexts(),
      backfilling: false,
    }),
    setMemorySettings: async (enabled, remote) => {
      memory.enabled = enabled;
      memory.remote = remote;
      return api.memoryStatus();
    },
    backfillMemory: async (onProgress) => {
      if (!memory.model) throw new ApiError({ kind: "model", message: "the embedding model is not installed; fetch it with `baton models fetch all-minilm-l6-v2`" });
      const total = storedTexts();
      const start = memory.embedded;
      onProgress({ done: Math.floor((start + total) / 2), total });
      onProgress({ done: total, total });
      memory.embedded = total;
      return { embedded: total - start, cancelled: false };
    },
    cancelBackfill: async () => false,
    docRoots: async () => roots.map((r) => ({ ...r })),
    rootDocuments: async (rootId) => (docs.get(rootId) ?? []).map((d) => ({ ...d })),
    addDocuments: async (path, onProgress) => {
      const p = path.trim().replace(/\/+$/, "");
      if (!Object.keys(files).some((f) => f === p || f.startsWith(`${p}/`))) {
        throw new ApiError({ kind: "invalid", message: `${p} cannot be added: No such file or directory (os error 2); give a folder or file that exists` });
      }
      let root = roots.find((r) => r.path === p);
      if (!root) {
        root = { id: nextId++, path: p, addedAt: now(), indexed: 0, skipped: 0, chunks: 0, bytes: 0 };
        roots.push(root);
      }
      return readRoot(root, onProgress);
    },
    reindexDocuments: async (rootId, onProgress) => {
      const root = roots.find((r) => r.id === rootId);
      if (!root) throw new ApiError({ kind: "notFound", message: "that folder is no longer in memory; add it again" });
      return readRoot(root, onProgress);
    },
    removeDocuments: async (rootId) => {
      const at = roots.findIndex((r) => r.id === rootId);
      if (at < 0) throw new ApiError({ kind: "invalid", message: `no documents were added as \`${rootId}\`` });
      const [root] = roots.splice(at, 1);
      docs.delete(rootId);
      return root;
    },
    setSessionMemory: async (sessionId, value) => {
      const s = find(sessionId);
      s.memory = value;
      return { ...s };
    },
    sessionSummary: async (sessionId) => summaries.get(sessionId) ?? null,
  };
  /** Whether the window has subscribed to voice input events (it does after loading). */
  const subscribedToVoice = () => voiceHandler !== null;
  /** Whether "Decide later" was stored. */
  const deferredChoice = () => deferred;
  return { api, sessions, messages, ratings, sentModes, readAloud, subscribedToVoice, keys, engines, runs, deferredChoice, tasks, files, roots, summaries, memory };
}
