// Evaluation in the Statistics view: the stored scores and runs, and a run started from the
// window (progress and cancel). Kept by the App, so a run goes on while other views show.
import { errorMessage, type BatonApi, type EvalReportInfo, type EvalRunInfo, type EvalScoreInfo } from "./api";

/** A run started in this window, as it goes. */
export interface EvalRunning {
  runId: number | null;
  done: number;
  total: number;
  passed: number;
  /** The last answer scored: model, question and whether it passed. */
  last: { model: string; itemId: string; ok: boolean } | null;
  cancelling: boolean;
}

/** Questions per set offered by "Run evaluation" (null: every question). */
export const LIMITS: { value: number | null; label: string }[] = [
  { value: 2, label: "2 questions per set (a quick check)" },
  { value: 10, label: "10 questions per set" },
  { value: 25, label: "25 questions per set" },
  { value: null, label: "Every question" },
];

export class EvalController {
  scores = $state<EvalScoreInfo[] | null>(null);
  runs = $state<EvalRunInfo[]>([]);
  /** Reading the scores failed. */
  error = $state<string | null>(null);
  running = $state<EvalRunning | null>(null);
  /** How the last run started here ended. */
  finished = $state<EvalReportInfo | null>(null);
  /** Why the last run could not start or failed. */
  runError = $state<string | null>(null);
  limit = $state<number | null>(10);

  constructor(private readonly api: BatonApi) {}

  private lastLoad = 0;

  /** Reads the scores and runs. Never throws: errors are shown. */
  async load(): Promise<void> {
    this.lastLoad = Date.now();
    try {
      const [scores, runs] = await Promise.all([this.api.evalScores(), this.api.evalRuns()]);
      this.scores = scores;
      this.runs = runs;
      this.error = null;
    } catch (e) {
      this.error = errorMessage(e);
    }
  }

  /** Runs the built-in sets over the installed chat models; progress shows as it goes. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = { runId: null, done: 0, total: 0, passed: 0, last: null, cancelling: false };
    this.finished = null;
    this.runError = null;
    try {
      this.finished = await this.api.startEval(this.limit, (p) => {
        if (!this.running) return;
        if (p.kind === "started") {
          this.running = { ...this.running, runId: p.runId, total: p.total };
          void this.load();
        } else {
          this.running = { ...this.running, done: p.done, total: p.total, passed: p.passed, last: { model: p.model, itemId: p.itemId, ok: p.ok } };
          // The table and the run's answer count follow the run, re-read at most every second.
          if (Date.now() - this.lastLoad > 1000) void this.load();
        }
      });
    } catch (e) {
      this.runError = errorMessage(e);
    } finally {
      this.running = null;
      await this.load();
    }
  }

  async cancel(): Promise<void> {
    if (!this.running) return;
    this.running = { ...this.running, cancelling: true };
    await this.api.cancelEval();
  }
}
