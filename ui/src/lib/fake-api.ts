// An in-memory BatonApi for unit tests: sessions, messages and a scripted "model".
import type { AppAction, AppStatus, BatonApi, MessageInfo, Preferences, ReadAloud, SessionInfo, StreamEvent, TurnResult, VoiceInput } from "./api";
import { ApiError } from "./api";

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
  const sentModes: string[] = [];
  const now = () => new Date().toISOString();
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
    const a = msg(sessionId, "assistant", text, { model: "tiny", completionTokens: tokens.length, latencyMs: 120, tokensPerSecond: 50 });
    messages.get(sessionId)!.push(a);
    find(sessionId).messageCount++;
    return { user: null, assistant: a, end: cancelled ? "cancelled" : "stop" };
  }

  const api: BatonApi = {
    status: async (): Promise<AppStatus> => ({
      version: "0.1.0",
      paths: { dataDir: "/data", configFile: "/config.toml", modelsDir: "/models" },
      startupError: opts.startupError ? { kind: "startup", message: opts.startupError } : null,
      defaultModel: "tiny",
      tray: true,
    }),
    listSessions: async () => [...sessions].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt)),
    createSession: async (title) => {
      const s: SessionInfo = { id: `s${nextId++}`, title, model: null, createdAt: now(), updatedAt: now(), messageCount: 0 };
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
    search: async (q) => {
      const hits = [];
      for (const [sid, list] of messages) {
        for (const m of list) {
          if (m.content.toLowerCase().includes(q.toLowerCase())) {
            hits.push({ messageId: m.id, sessionId: sid, sessionTitle: find(sid).title, role: m.role, snippet: m.content, createdAt: m.createdAt });
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
    listEngines: async () => [],
    stop: async () => {
      const s = stopper;
      stopper = null;
      s?.();
      return s !== null;
    },
    listModels: async () => [],
    addModel: async () => {
      throw new ApiError({ kind: "model", message: "not a GGUF file" });
    },
    fetchableModels: async () => [],
    fetchModel: async (name) => {
      throw new ApiError({ kind: "model", message: `cannot fetch ${name} in tests` });
    },
    cancelFetch: async () => false,
    verifyModel: async (name) => ({ name, ok: true, detail: "intact" }),
    removeModel: async () => {},
    getPreferences: async () => ({ preferences: prefs, shortcutErrors: [] }),
    setPreferences: async (p) => {
      prefs = p;
      return { preferences: p, shortcutErrors: [] };
    },
    copy: async () => {},
    takePendingActions: async (): Promise<AppAction[]> => [],
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
  };
  /** Whether the window has subscribed to voice input events (it does after loading). */
  const subscribedToVoice = () => voiceHandler !== null;
  return { api, sessions, messages, ratings, sentModes, readAloud, subscribedToVoice };
}
