// The UI's only door to the Rust side: the generated, typed commands in ../bindings.ts,
// with their Result values turned into exceptions (ApiError) so components stay simple.
import { Channel } from "@tauri-apps/api/core";
import {
  commands,
  events,
  type AnswerMode,
  type AppAction,
  type AppError,
  type AppStatus,
  type BackfillReport,
  type CaptureInfo,
  type CaptureSummaryInfo,
  type DocRootInfo,
  type DocumentInfo,
  type EngineInfo,
  type EngineTestInfo,
  type EvalProgressInfo,
  type EvalReportInfo,
  type EvalRunInfo,
  type EvalScoreInfo,
  type FetchableModel,
  type FetchProgressInfo,
  type IndexResult,
  type MemoryHitInfo,
  type MemoryProgress,
  type MemoryStatus,
  type MessageInfo,
  type PendingCapture,
  type ModelCheck,
  type ModelChoice,
  type ModelFitInfo,
  type ModelInfo,
  type NewEngine,
  type ParamFieldInfo,
  type Preferences,
  type PreferencesState,
  type QueueInfo,
  type ReadAloud,
  type RunInfo,
  type ScheduleInfo,
  type SessionInfo,
  type SkippedFile,
  type SourceInfo,
  type StatsInfo,
  type StepInfo,
  type StreamEvent,
  type TaskDetail,
  type TaskEventInfo,
  type TaskInfo,
  type TasksChanged,
  type TemplateInfo,
  type TurnResult,
  type TurnSummaryInfo,
  type UsageRow,
  type VoiceInput,
} from "../bindings";

export type {
  AnswerMode,
  AppAction,
  AppError,
  AppStatus,
  BackfillReport,
  CaptureInfo,
  CaptureSummaryInfo,
  DocRootInfo,
  DocumentInfo,
  EngineInfo,
  EngineTestInfo,
  EvalProgressInfo,
  EvalReportInfo,
  EvalRunInfo,
  EvalScoreInfo,
  FetchableModel,
  FetchProgressInfo,
  IndexResult,
  MemoryHitInfo,
  MemoryProgress,
  MemoryStatus,
  MessageInfo,
  PendingCapture,
  ModelCheck,
  ModelChoice,
  ModelFitInfo,
  ModelInfo,
  NewEngine,
  ParamFieldInfo,
  Preferences,
  PreferencesState,
  QueueInfo,
  ReadAloud,
  RunInfo,
  ScheduleInfo,
  SessionInfo,
  SkippedFile,
  SourceInfo,
  StatsInfo,
  StepInfo,
  StreamEvent,
  TaskDetail,
  TaskEventInfo,
  TaskInfo,
  TasksChanged,
  TemplateInfo,
  TurnResult,
  TurnSummaryInfo,
  UsageRow,
  VoiceInput,
};

/** An error from a command: its kind (`modelUnavailable`, `notFound`, …) and message. */
export class ApiError extends Error {
  readonly kind: string;
  constructor(error: AppError) {
    super(error.message);
    this.kind = error.kind;
    this.name = "ApiError";
  }
}

/** Turns any thrown value into a message a person can read. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === "string") return e;
  if (e && typeof e === "object" && "message" in e) return String((e as { message: unknown }).message);
  return "Something went wrong; see the logs (BATON_LOG=debug) for details.";
}

type R<T> = { status: "ok"; data: T } | { status: "error"; error: AppError };

async function unwrap<T>(p: Promise<R<T>>): Promise<T> {
  const r = await p;
  if (r.status === "error") throw new ApiError(r.error);
  return r.data;
}

/** What the UI needs from the shell. The real one talks to Rust; tests pass a fake. */
export interface BatonApi {
  status(): Promise<AppStatus>;
  listSessions(): Promise<SessionInfo[]>;
  createSession(title: string): Promise<SessionInfo>;
  renameSession(id: string, title: string): Promise<SessionInfo>;
  deleteSession(id: string): Promise<void>;
  messages(id: string): Promise<MessageInfo[]>;
  /** Searches everything stored (conversations, captures, documents, task outputs) by words
   * and meaning; `kind` narrows it to `message`, `capture`, `chunk` or `task`. */
  search(query: string, kind: string | null): Promise<MemoryHitInfo[]>;
  send(sessionId: string, text: string, model: string | null, mode: AnswerMode, onEvent: (e: StreamEvent) => void): Promise<TurnResult>;
  regenerate(sessionId: string, model: string | null, mode: AnswerMode, onEvent: (e: StreamEvent) => void): Promise<TurnResult>;
  rate(messageId: number, rating: number | null): Promise<void>;
  stats(): Promise<StatsInfo>;
  listEngines(): Promise<EngineInfo[]>;
  /** Adds a remote engine after the runtime has checked it; the key is never returned. */
  addEngine(engine: NewEngine): Promise<EngineInfo>;
  testEngine(name: string): Promise<EngineTestInfo>;
  removeEngine(name: string): Promise<boolean>;
  /** The chat models for this machine and whether to ask the person to choose. */
  modelChoice(): Promise<ModelChoice>;
  /** Makes an installed chat model the default. */
  chooseModel(name: string): Promise<ModelChoice>;
  /** "Decide later" on the first-start model choice. */
  deferModelChoice(): Promise<void>;
  evalScores(): Promise<EvalScoreInfo[]>;
  evalRuns(): Promise<EvalRunInfo[]>;
  /** Runs the built-in question sets (at most `limit` each) over the installed chat models. */
  startEval(limit: number | null, onProgress: (p: EvalProgressInfo) => void): Promise<EvalReportInfo>;
  cancelEval(): Promise<boolean>;
  stop(sessionId: string): Promise<boolean>;
  listModels(): Promise<ModelInfo[]>;
  addModel(path: string, name: string | null): Promise<ModelInfo>;
  fetchableModels(): Promise<FetchableModel[]>;
  fetchModel(name: string, onProgress: (p: FetchProgressInfo) => void): Promise<ModelInfo>;
  cancelFetch(name: string): Promise<boolean>;
  verifyModel(name: string): Promise<ModelCheck>;
  removeModel(name: string): Promise<void>;
  getPreferences(): Promise<PreferencesState>;
  setPreferences(p: Preferences): Promise<PreferencesState>;
  copy(text: string): Promise<void>;
  takePendingActions(): Promise<AppAction[]>;
  startCapture(): Promise<void>;
  pendingCapture(): Promise<PendingCapture>;
  /** The selection page has drawn the screenshot (or its error): show its window. */
  showSelection(): Promise<void>;
  cancelCapture(): Promise<void>;
  finishCapture(x: number, y: number, width: number, height: number): Promise<CaptureInfo>;
  listCaptures(query: string | null): Promise<CaptureSummaryInfo[]>;
  getCapture(id: number): Promise<CaptureInfo>;
  deleteCapture(id: number): Promise<void>;
  onAction(handler: (a: AppAction) => void): Promise<() => void>;
  /** Listens to the microphone: `hold` until stopListening, else until the end of the utterance. */
  startListening(hold: boolean): Promise<void>;
  stopListening(): Promise<boolean>;
  readAloud(text: string, messageId: number | null): Promise<void>;
  stopReading(): Promise<boolean>;
  onVoiceInput(handler: (e: VoiceInput) => void): Promise<() => void>;
  onReadAloud(handler: (e: ReadAloud) => void): Promise<() => void>;
  /** The queue: recent runs (newest first), what waits or runs (in run order), approvals. */
  taskQueue(): Promise<QueueInfo>;
  /** A run's steps in order, for its graph. */
  runTasks(runId: string): Promise<TaskInfo[]>;
  /** A step with its history and log. */
  taskDetail(id: string): Promise<TaskDetail>;
  /** The templates with the fields of their parameter schema. */
  taskTemplates(): Promise<TemplateInfo[]>;
  /** Starts a run of a template; values may be text (the backend types them by the schema). Returns the run's id. */
  startTemplate(key: string, params: Record<string, unknown>): Promise<string>;
  /** Cancels a task (and its dependants) or a whole run; returns how many were cancelled. */
  cancelTask(id: string): Promise<number>;
  /** Runs a failed, cancelled or skipped task again. */
  retryTask(id: string): Promise<void>;
  /** Approves a step waiting for a person; `edited` replaces the text it passes on. */
  approveTask(id: string, edited: string | null): Promise<void>;
  rejectTask(id: string, reason: string): Promise<void>;
  /** Moves a waiting task just before another (or, with null, to the end of its priority). */
  moveTask(id: string, before: string | null): Promise<void>;
  setQueuePaused(paused: boolean): Promise<void>;
  taskSchedules(): Promise<ScheduleInfo[]>;
  /** Called whenever a task changes state, with the number of approvals waiting. */
  onTasksChanged(handler: (e: TasksChanged) => void): Promise<() => void>;
  /** Memory's switches and how far embedding has got. */
  memoryStatus(): Promise<MemoryStatus>;
  setMemorySettings(enabled: boolean, remote: boolean): Promise<MemoryStatus>;
  /** Embeds every stored text without a vector, reporting (embedded, total). */
  backfillMemory(onProgress: (p: MemoryProgress) => void): Promise<BackfillReport>;
  cancelBackfill(): Promise<boolean>;
  /** The folders and files added to memory. */
  docRoots(): Promise<DocRootInfo[]>;
  /** The files under one of them, indexed and skipped (with the reason). */
  rootDocuments(rootId: number): Promise<DocumentInfo[]>;
  /** Adds a folder or file to memory and reads it, reporting (files read, files found). */
  addDocuments(path: string, onProgress: (p: MemoryProgress) => void): Promise<IndexResult>;
  reindexDocuments(rootId: number, onProgress: (p: MemoryProgress) => void): Promise<IndexResult>;
  removeDocuments(rootId: number): Promise<DocRootInfo>;
  /** Memory on, off, or null to follow Settings, for one session. */
  setSessionMemory(sessionId: string, memory: boolean | null): Promise<SessionInfo>;
  /** The model's summary of a session's older turns, if the conversation outgrew the context. */
  sessionSummary(sessionId: string): Promise<TurnSummaryInfo | null>;
}

function channel<T>(onEvent: (e: T) => void): Channel<T> {
  const ch = new Channel<T>();
  ch.onmessage = onEvent;
  return ch;
}

/** The API backed by the Tauri commands. */
export const tauriApi: BatonApi = {
  status: () => commands.appStatus(),
  listSessions: () => unwrap(commands.listSessions()),
  createSession: (title) => unwrap(commands.createSession(title)),
  renameSession: (id, title) => unwrap(commands.renameSession(id, title)),
  deleteSession: async (id) => {
    await unwrap(commands.deleteSession(id));
  },
  messages: (id) => unwrap(commands.sessionMessages(id)),
  search: (q, kind) => unwrap(commands.searchMemory(q, kind)),
  send: (sessionId, text, model, mode, onEvent) =>
    unwrap(commands.sendMessage(sessionId, text, model, mode, channel(onEvent))),
  regenerate: (sessionId, model, mode, onEvent) => unwrap(commands.regenerate(sessionId, model, mode, channel(onEvent))),
  rate: async (messageId, rating) => {
    await unwrap(commands.rateMessage(messageId, rating));
  },
  stats: () => unwrap(commands.getStats()),
  listEngines: () => unwrap(commands.listEngines()),
  addEngine: (engine) => unwrap(commands.addEngine(engine)),
  testEngine: (name) => unwrap(commands.testEngine(name)),
  removeEngine: (name) => unwrap(commands.removeEngine(name)),
  modelChoice: () => unwrap(commands.modelChoice()),
  chooseModel: (name) => unwrap(commands.chooseModel(name)),
  deferModelChoice: async () => {
    await unwrap(commands.deferModelChoice());
  },
  evalScores: () => unwrap(commands.evalScores()),
  evalRuns: () => unwrap(commands.evalRuns()),
  startEval: (limit, onProgress) => unwrap(commands.startEval(limit, channel(onProgress))),
  cancelEval: () => commands.cancelEval(),
  stop: (sessionId) => commands.stopGeneration(sessionId),
  listModels: () => unwrap(commands.listModels()),
  addModel: (path, name) => unwrap(commands.addModel(path, name)),
  fetchableModels: () => unwrap(commands.fetchableModels()),
  fetchModel: (name, onProgress) => unwrap(commands.fetchModel(name, channel(onProgress))),
  cancelFetch: (name) => commands.cancelFetch(name),
  verifyModel: (name) => unwrap(commands.verifyModel(name)),
  removeModel: async (name) => {
    await unwrap(commands.removeModel(name));
  },
  getPreferences: () => unwrap(commands.getPreferences()),
  setPreferences: (p) => unwrap(commands.setPreferences(p)),
  copy: async (text) => {
    await unwrap(commands.copyText(text));
  },
  takePendingActions: () => commands.takePendingActions(),
  startCapture: () => commands.startCapture(),
  pendingCapture: () => unwrap(commands.pendingCapture()),
  showSelection: () => commands.showSelection(),
  cancelCapture: () => commands.cancelCapture(),
  finishCapture: (x, y, width, height) => unwrap(commands.finishCapture(x, y, width, height)),
  listCaptures: (query) => unwrap(commands.listCaptures(query)),
  getCapture: (id) => unwrap(commands.getCapture(id)),
  deleteCapture: async (id) => {
    await unwrap(commands.deleteCapture(id));
  },
  onAction: (handler) => events.appAction.listen((e) => handler(e.payload)),
  startListening: async (hold) => {
    await unwrap(commands.startListening(hold));
  },
  stopListening: () => commands.stopListening(),
  readAloud: async (text, messageId) => {
    await unwrap(commands.readAloud(text, messageId));
  },
  stopReading: () => commands.stopReading(),
  onVoiceInput: (handler) => events.voiceInput.listen((e) => handler(e.payload)),
  onReadAloud: (handler) => events.readAloud.listen((e) => handler(e.payload)),
  taskQueue: () => unwrap(commands.taskQueue()),
  runTasks: (runId) => unwrap(commands.runTasks(runId)),
  taskDetail: (id) => unwrap(commands.taskDetail(id)),
  taskTemplates: () => unwrap(commands.taskTemplates()),
  startTemplate: (key, params) => unwrap(commands.startTemplate(key, JSON.stringify(params))),
  cancelTask: (id) => unwrap(commands.cancelTask(id)),
  retryTask: async (id) => {
    await unwrap(commands.retryTask(id));
  },
  approveTask: async (id, edited) => {
    await unwrap(commands.approveTask(id, edited));
  },
  rejectTask: async (id, reason) => {
    await unwrap(commands.rejectTask(id, reason));
  },
  moveTask: async (id, before) => {
    await unwrap(commands.moveTask(id, before));
  },
  setQueuePaused: async (paused) => {
    await unwrap(commands.setQueuePaused(paused));
  },
  taskSchedules: () => unwrap(commands.taskSchedules()),
  onTasksChanged: (handler) => events.tasksChanged.listen((e) => handler(e.payload)),
  memoryStatus: () => unwrap(commands.memoryStatus()),
  setMemorySettings: (enabled, remote) => unwrap(commands.setMemorySettings(enabled, remote)),
  backfillMemory: (onProgress) => unwrap(commands.backfillMemory(channel(onProgress))),
  cancelBackfill: () => commands.cancelBackfill(),
  docRoots: () => unwrap(commands.docRoots()),
  rootDocuments: (rootId) => unwrap(commands.rootDocuments(rootId)),
  addDocuments: (path, onProgress) => unwrap(commands.addDocuments(path, channel(onProgress))),
  reindexDocuments: (rootId, onProgress) => unwrap(commands.reindexDocuments(rootId, channel(onProgress))),
  removeDocuments: (rootId) => unwrap(commands.removeDocuments(rootId)),
  setSessionMemory: (sessionId, memory) => unwrap(commands.setSessionMemory(sessionId, memory)),
  sessionSummary: (sessionId) => unwrap(commands.sessionSummary(sessionId)),
};
