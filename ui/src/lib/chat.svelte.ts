// The window's state and what the person can do with it. Every decision about data is
// the runtime's; this class only keeps what is on screen in step with the API's answers.
import { errorMessage, type AppStatus, type BatonApi, type EngineInfo, type MessageInfo, type ModelInfo, type Preferences, type MemoryHitInfo, type ReadAloud, type SessionInfo, type StepInfo, type TurnSummaryInfo, type VoiceInput } from "./api";
import { nowIso, titleFrom } from "./format";

/** An error shown in the window, with what kind it is (so the UI can offer a way out). */
export interface ShownError {
  kind: string;
  message: string;
}

/** The answer being generated. */
export interface Streaming {
  sessionId: string;
  text: string;
  model: string | null;
  startedAt: number;
  notices: string[];
  /** How the answer is being made: routing, branches, critiques, scores. */
  steps: StepInfo[];
}

export const NEW_CHAT_TITLE = "New chat";

/** Voice input in progress (the mic button, the push-to-talk shortcut or the tray). */
export interface Listening {
  /** starting: the microphone opens and the model loads; listening: waiting for speech. */
  phase: "starting" | "listening" | "speech";
  /** Push to talk: listens while the keys are held. */
  hold: boolean;
  /** Recent input levels (0..1), newest last, for the level meter. */
  levels: number[];
  /** The utterance's text so far. */
  partial: string;
  /** Final text of the utterances heard so far. */
  heard: string[];
}

/** How many recent levels the meter shows. */
export const LEVEL_BARS = 16;

const defaultPreferences: Preferences = {
  theme: "system",
  model: null,
  mode: "single",
  shortcuts: {
    showWindow: "CommandOrControl+Shift+Space",
    newChat: "CommandOrControl+Shift+N",
    ocrRegion: "CommandOrControl+Shift+O",
    pushToTalk: "CommandOrControl+Shift+M",
  },
  voice: { afterSpeech: "send", autoSpeak: false },
};

function toShown(e: unknown): ShownError {
  const kind = e && typeof e === "object" && "kind" in e ? String((e as { kind: unknown }).kind) : "error";
  return { kind, message: errorMessage(e) };
}

export class ChatController {
  status = $state<AppStatus | null>(null);
  loading = $state(true);
  sessions = $state<SessionInfo[]>([]);
  currentId = $state<string | null>(null);
  messages = $state<MessageInfo[]>([]);
  streaming = $state<Streaming | null>(null);
  error = $state<ShownError | null>(null);
  models = $state<ModelInfo[]>([]);
  /** Remote engines (their models appear in the model picker). */
  engines = $state<EngineInfo[]>([]);
  /** The steps behind answers made in this window, by message id. */
  stepsById = $state<Record<number, StepInfo[]>>({});
  preferences = $state<Preferences>(defaultPreferences);
  shortcutErrors = $state<string[]>([]);
  searchQuery = $state("");
  /** Search hits over everything stored (null: no search, the session list shows). */
  searchResults = $state<MemoryHitInfo[] | null>(null);
  searchError = $state<string | null>(null);
  /** The search's kind filter: `message`, `capture`, `chunk`, `task`, or null for all. */
  searchKind = $state<string | null>(null);
  /** Memory for sessions that follow the global setting (Settings → Memory). */
  memoryOn = $state(true);
  /** The current session's summary of older turns, when it outgrew the context window. */
  summary = $state<TurnSummaryInfo | null>(null);
  highlightMessageId = $state<number | null>(null);
  /** Answers the person stopped in this window (shown with a "stopped" mark). */
  stoppedIds = $state<Record<number, true>>({});
  /** Text to put into the composer (an "ask about clipboard" action), or to add to it
   * (voice input in "insert" mode). */
  draft = $state<{ text: string; nonce: number; append?: boolean } | null>(null);
  /** Voice input in progress. */
  listening = $state<Listening | null>(null);
  /** A short note under the composer (nothing heard, …). */
  voiceNote = $state<string | null>(null);
  /** What is being read aloud: a message's id, or null for an answer as it streams. */
  reading = $state<{ messageId: number | null } | null>(null);

  private pendingText = "";
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private searchTimer: ReturnType<typeof setTimeout> | null = null;
  private searchSeq = 0;

  constructor(private readonly api: BatonApi) {}

  get current(): SessionInfo | null {
    return this.sessions.find((s) => s.id === this.currentId) ?? null;
  }

  get busy(): boolean {
    return this.streaming !== null && this.streaming.sessionId === this.currentId;
  }

  /** Loads everything the window shows at start. Never throws: errors are shown. */
  async init(): Promise<void> {
    this.loading = true;
    try {
      this.status = await this.api.status();
      if (this.status.startupError) return;
      const [sessions, models, prefs, engines, memory] = await Promise.all([
        this.api.listSessions(),
        this.api.listModels().catch(() => [] as ModelInfo[]),
        this.api.getPreferences().catch(() => null),
        this.api.listEngines().catch(() => [] as EngineInfo[]),
        this.api.memoryStatus().catch(() => null),
      ]);
      this.sessions = sessions;
      if (memory) this.memoryOn = memory.enabled;
      this.models = models;
      this.engines = engines;
      if (prefs) {
        this.preferences = prefs.preferences;
        this.shortcutErrors = prefs.shortcutErrors;
      }
      if (sessions.length > 0) await this.select(sessions[0].id);
    } catch (e) {
      this.error = toShown(e);
    } finally {
      this.loading = false;
    }
  }

  async refreshSessions(): Promise<void> {
    try {
      this.sessions = await this.api.listSessions();
    } catch (e) {
      this.error = toShown(e);
    }
  }

  async refreshModels(): Promise<void> {
    this.models = await this.api.listModels();
  }

  /** Re-reads the remote engines (after one was added or removed in Settings). */
  async refreshEngines(): Promise<void> {
    this.engines = await this.api.listEngines();
  }

  /** Re-reads the app status (the default model changes when one is chosen). */
  async refreshStatus(): Promise<void> {
    this.status = await this.api.status();
  }

  async select(id: string, highlight: number | null = null): Promise<void> {
    const switched = this.currentId !== id;
    this.currentId = id;
    this.highlightMessageId = highlight;
    this.error = null;
    if (switched) this.summary = null;
    try {
      const [list, summary] = await Promise.all([this.api.messages(id), this.api.sessionSummary(id).catch(() => null)]);
      if (this.currentId === id) {
        this.messages = list;
        this.summary = summary;
      }
    } catch (e) {
      this.error = toShown(e);
    }
  }

  /** Re-reads the current session's summary (a turn may have summarised older turns). */
  private async refreshSummary(sessionId: string): Promise<void> {
    const summary = await this.api.sessionSummary(sessionId).catch(() => null);
    if (this.currentId === sessionId) this.summary = summary;
  }

  /** Memory on, off, or null to follow Settings, for the current session. */
  async setSessionMemory(memory: boolean | null): Promise<void> {
    const id = this.currentId;
    if (!id) return;
    try {
      const s = await this.api.setSessionMemory(id, memory);
      this.sessions = this.sessions.map((x) => (x.id === s.id ? { ...x, memory: s.memory } : x));
    } catch (e) {
      this.error = toShown(e);
    }
  }

  /** Opens a fresh chat (reusing the current one when it is still empty). */
  async newChat(): Promise<void> {
    this.clearSearch();
    const cur = this.current;
    if (cur && cur.messageCount === 0 && this.messages.length === 0 && cur.title === NEW_CHAT_TITLE) return;
    try {
      const s = await this.api.createSession(NEW_CHAT_TITLE);
      this.sessions = [s, ...this.sessions];
      this.currentId = s.id;
      this.messages = [];
      this.summary = null;
      this.error = null;
    } catch (e) {
      this.error = toShown(e);
    }
  }

  /** Sends what the person typed and streams the answer. */
  async send(text: string): Promise<void> {
    const body = text.trim();
    if (!body || this.busy) return;
    this.error = null;
    if (!this.currentId) {
      await this.newChat();
      if (!this.currentId) return;
    }
    const sessionId = this.currentId!;
    const session = this.current;
    if (session && session.title === NEW_CHAT_TITLE && session.messageCount === 0) {
      try {
        const renamed = await this.api.renameSession(sessionId, titleFrom(body));
        this.replaceSession(renamed);
      } catch {
        // A title is cosmetic; the message matters.
      }
    }
    const optimistic: MessageInfo = {
      id: -Date.now(),
      sessionId,
      role: "user",
      content: text,
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
      createdAt: nowIso(),
    };
    this.messages = [...this.messages, optimistic];
    await this.run(sessionId, (onEvent) => this.api.send(sessionId, text, this.preferences.model, this.preferences.mode, onEvent), optimistic.id);
  }

  /** Answers again (after an error, a stop, or to get another answer). */
  async regenerate(): Promise<void> {
    if (!this.currentId || this.busy) return;
    const sessionId = this.currentId;
    this.error = null;
    await this.run(sessionId, (onEvent) => this.api.regenerate(sessionId, this.preferences.model, this.preferences.mode, onEvent), null);
  }

  async stop(): Promise<void> {
    if (this.streaming) await this.api.stop(this.streaming.sessionId);
  }

  private async run(
    sessionId: string,
    call: (onEvent: (e: import("./api").StreamEvent) => void) => Promise<import("./api").TurnResult>,
    optimisticId: number | null,
  ): Promise<void> {
    this.streaming = { sessionId, text: "", model: this.preferences.model, startedAt: Date.now(), notices: [], steps: [] };
    this.pendingText = "";
    try {
      const result = await call((event) => {
        if (!this.streaming) return;
        if (event.type === "token") {
          this.pendingText += event.text;
          this.scheduleFlush();
        } else if (event.type === "started") {
          this.streaming.model = event.model;
        } else if (event.type === "notice") {
          this.streaming.notices = [...this.streaming.notices, event.message];
        } else if (event.type === "restart") {
          // A fallback model answers from the start: the partial text is withdrawn.
          this.pendingText = "";
          this.streaming.text = "";
        } else if (event.type === "step") {
          this.streaming.steps = [...this.streaming.steps, event.step];
        }
      });
      if (this.streaming && this.streaming.steps.length > 0) {
        this.stepsById = { ...this.stepsById, [result.assistant.id]: this.streaming.steps };
      }
      if (result.end === "cancelled") this.stoppedIds = { ...this.stoppedIds, [result.assistant.id]: true };
      if (this.currentId === sessionId) {
        const kept = this.messages.filter((m) => m.id !== optimisticId);
        this.messages = [...kept, ...(result.user ? [result.user] : []), result.assistant];
      }
    } catch (e) {
      if (this.currentId === sessionId) {
        this.error = toShown(e);
        // The runtime stored the question before the engine ran: show what is stored.
        try {
          this.messages = await this.api.messages(sessionId);
        } catch {
          /* keep the optimistic view */
        }
      }
    } finally {
      this.flush();
      this.streaming = null;
      await Promise.all([this.refreshSessions(), this.refreshSummary(sessionId)]);
    }
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => this.flush(), 33);
  }

  private flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.streaming && this.pendingText) {
      this.streaming.text += this.pendingText;
      this.pendingText = "";
    }
  }

  private replaceSession(s: SessionInfo): void {
    this.sessions = this.sessions.map((x) => (x.id === s.id ? { ...x, title: s.title, updatedAt: s.updatedAt } : x));
  }

  async rename(id: string, title: string): Promise<void> {
    try {
      this.replaceSession(await this.api.renameSession(id, title));
    } catch (e) {
      this.error = toShown(e);
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.api.deleteSession(id);
      this.sessions = this.sessions.filter((s) => s.id !== id);
      if (this.currentId === id) {
        this.currentId = null;
        this.messages = [];
        this.summary = null;
        if (this.sessions.length > 0) await this.select(this.sessions[0].id);
      }
    } catch (e) {
      this.error = toShown(e);
    }
  }

  /** Search over everything stored, debounced; an empty query shows the session list again. */
  setSearch(query: string, delayMs = 150): void {
    this.searchQuery = query;
    if (this.searchTimer) clearTimeout(this.searchTimer);
    if (!query.trim()) {
      // A search still on its way must not bring its results back.
      this.searchSeq++;
      this.searchResults = null;
      this.searchError = null;
      return;
    }
    this.searchTimer = setTimeout(() => void this.runSearch(query), delayMs);
  }

  async runSearch(query: string): Promise<void> {
    const seq = ++this.searchSeq;
    try {
      const hits = await this.api.search(query, this.searchKind);
      if (seq === this.searchSeq) {
        this.searchResults = hits;
        this.searchError = null;
      }
    } catch (e) {
      if (seq === this.searchSeq) {
        this.searchResults = [];
        this.searchError = errorMessage(e);
      }
    }
  }

  clearSearch(): void {
    this.setSearch("");
  }

  /** Narrows the search to one kind (null: everything) and searches again. */
  setSearchKind(kind: string | null): void {
    this.searchKind = kind;
    if (this.searchQuery.trim()) this.setSearch(this.searchQuery, 0);
  }

  async setModel(model: string | null): Promise<void> {
    await this.savePreferences({ ...this.preferences, model });
  }

  async setMode(mode: Preferences["mode"]): Promise<void> {
    await this.savePreferences({ ...this.preferences, mode });
  }

  /** Thumbs up (1), down (-1), or clears (a second click on the same thumb). */
  async rate(messageId: number, rating: 1 | -1): Promise<void> {
    const m = this.messages.find((x) => x.id === messageId);
    if (!m) return;
    const next = m.rating === rating ? null : rating;
    try {
      await this.api.rate(messageId, next);
      this.messages = this.messages.map((x) => (x.id === messageId ? { ...x, rating: next } : x));
    } catch (e) {
      this.error = toShown(e);
    }
  }

  async savePreferences(p: Preferences): Promise<void> {
    this.preferences = p;
    try {
      const saved = await this.api.setPreferences(p);
      this.preferences = saved.preferences;
      this.shortcutErrors = saved.shortcutErrors;
    } catch (e) {
      this.error = toShown(e);
    }
  }

  /** Starts a new chat with `text` quoted in the composer, ready for a question. */
  async askAbout(text: string): Promise<void> {
    await this.newChat();
    const body = text.trim();
    const quoted = body ? `${body.split("\n").map((l) => `> ${l}`).join("\n")}\n\n` : "";
    this.draft = { text: quoted, nonce: Date.now() };
  }

  /** The mic button: starts listening until the end of what is said, or stops. */
  async toggleListening(): Promise<void> {
    if (this.listening) {
      await this.stopListening();
      return;
    }
    this.voiceNote = null;
    this.listening = { phase: "starting", hold: false, levels: [], partial: "", heard: [] };
    try {
      await this.api.startListening(false);
    } catch (e) {
      this.listening = null;
      this.error = toShown(e);
    }
  }

  async stopListening(): Promise<void> {
    if (!(await this.api.stopListening().catch(() => false))) this.listening = null;
  }

  /** Voice input as it happens, whoever started it. */
  async onVoiceInput(e: VoiceInput): Promise<void> {
    if (e.kind === "starting") {
      this.voiceNote = null;
      this.listening = { phase: "starting", hold: e.hold, levels: [], partial: "", heard: [] };
      return;
    }
    if (e.kind === "ended") {
      const heard = this.listening?.heard ?? [];
      this.listening = null;
      if (e.error) {
        this.error = e.error;
        return;
      }
      await this.useHeard(heard.join(" ").trim());
      return;
    }
    const l = this.listening;
    if (!l) return;
    if (e.kind === "listening") l.phase = l.phase === "starting" ? "listening" : l.phase;
    else if (e.kind === "level") l.levels = [...l.levels, e.level].slice(-LEVEL_BARS);
    else if (e.kind === "speechStarted") l.phase = "speech";
    else if (e.kind === "partial") l.partial = e.text;
    else if (e.kind === "final") {
      l.heard = [...l.heard, e.text.trim()];
      l.partial = "";
      l.phase = "listening";
    }
  }

  /** Sends what was heard, or puts it into the composer (the preference, or while an
   * answer is still being generated). */
  private async useHeard(text: string): Promise<void> {
    if (!text) {
      this.voiceNote = "Nothing was heard. Check the microphone and speak a little closer.";
      return;
    }
    if (this.preferences.voice.afterSpeech === "send" && !this.busy) await this.send(text);
    else this.draft = { text, nonce: Date.now(), append: true };
  }

  /** "Read aloud" on a message; a second click stops it. */
  async toggleReading(message: MessageInfo): Promise<void> {
    if (this.reading && this.reading.messageId === message.id) {
      await this.api.stopReading().catch(() => false);
      this.reading = null;
      return;
    }
    try {
      this.reading = { messageId: message.id };
      await this.api.readAloud(message.content, message.id);
    } catch (e) {
      this.reading = null;
      this.error = toShown(e);
    }
  }

  async stopReading(): Promise<void> {
    await this.api.stopReading().catch(() => false);
    this.reading = null;
  }

  onReadAloud(e: ReadAloud): void {
    if (e.error) this.voiceNote = `A sentence could not be read aloud: ${e.error}`;
    if (e.playing) this.reading = { messageId: e.messageId };
    else if (!this.reading || e.messageId === null || this.reading.messageId === e.messageId) this.reading = null;
  }

  async setVoice(voice: Partial<Preferences["voice"]>): Promise<void> {
    await this.savePreferences({ ...this.preferences, voice: { ...this.preferences.voice, ...voice } });
  }

  /** A quick action from the tray, a shortcut or `baton-app --action`. */
  async handleAction(action: import("./api").AppAction): Promise<void> {
    if (action.kind === "listen") {
      if (!this.listening) await this.toggleListening();
      return;
    }
    if (action.kind === "newChat") {
      await this.newChat();
    } else if (action.kind === "askClipboard") {
      await this.askAbout(action.text);
      if (!action.text.trim()) this.error = { kind: "clipboard", message: "The clipboard holds no text. Copy some text, then choose “Ask about clipboard” again." };
    } else if (action.kind === "captureFailed") {
      this.error = { kind: "capture", message: action.message };
    }
  }
}
