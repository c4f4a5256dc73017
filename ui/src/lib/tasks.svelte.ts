// The Tasks view's state: the queue, the selected run with its steps and the selected step's
// detail, what each approval passes on, templates and schedules; the controls (start, cancel,
// retry, approve, reject, reorder, pause); and live updates while the view is shown.
import { errorMessage, type BatonApi, type QueueInfo, type RunInfo, type ScheduleInfo, type TaskDetail, type TaskInfo, type TemplateInfo } from "./api";

/** Where a control's error is shown. */
export type Place = "header" | "queue" | "run" | "detail" | "approval";

export class TasksController {
  queue = $state<QueueInfo | null>(null);
  /** Why the queue could not be read. */
  error = $state<string | null>(null);
  /** Steps waiting for a person (the sidebar's badge), also when the view is not shown. */
  approvals = $state(0);
  templates = $state<TemplateInfo[] | null>(null);
  templatesError = $state<string | null>(null);
  schedules = $state<ScheduleInfo[] | null>(null);
  schedulesError = $state<string | null>(null);
  selectedRunId = $state<string | null>(null);
  /** The selected run's steps, in order. */
  steps = $state<TaskInfo[]>([]);
  stepsError = $state<string | null>(null);
  selectedTaskId = $state<string | null>(null);
  detail = $state<TaskDetail | null>(null);
  detailError = $state<string | null>(null);
  /** What each approval passes on (the output of the steps it waits for), by its task id. */
  approvalInputs = $state<Record<string, string>>({});
  approvalInputErrors = $state<Record<string, string>>({});
  /** The last control that failed, and where. */
  notice = $state<{ place: Place; text: string } | null>(null);
  /** Controls under way, by a key such as `cancel:ID`: their buttons are disabled. */
  pending = $state<Record<string, boolean>>({});

  private inflight: Promise<void> | null = null;
  private again = false;
  private autoSelected = false;

  constructor(private readonly api: BatonApi) {}

  get paused(): boolean {
    return this.queue?.paused ?? false;
  }

  get runs(): RunInfo[] {
    return [...(this.queue?.runs ?? [])].sort((a, b) => b.createdMs - a.createdMs);
  }

  get selectedRun(): RunInfo | null {
    return this.queue?.runs.find((r) => r.id === this.selectedRunId) ?? null;
  }

  /** Whether something runs (then the view refreshes every second for progress). */
  get anyRunning(): boolean {
    return (this.queue?.waiting ?? []).some((t) => t.state === "running") || this.steps.some((t) => t.state === "running");
  }

  /** Reads everything the view shows; calls made while one runs are folded into one more. */
  refresh(): Promise<void> {
    if (this.inflight) {
      this.again = true;
      return this.inflight;
    }
    this.inflight = (async () => {
      do {
        this.again = false;
        await this.load();
      } while (this.again);
    })().finally(() => (this.inflight = null));
    return this.inflight;
  }

  /** Only the number of approvals (for the sidebar, when the view is not shown). */
  async countApprovals(): Promise<void> {
    try {
      const q = await this.api.taskQueue();
      this.queue = q;
      this.approvals = q.approvals.length;
    } catch {
      // The view says why when it is opened; the badge stays as it was.
    }
  }

  private async load() {
    try {
      const q = await this.api.taskQueue();
      this.queue = q;
      this.approvals = q.approvals.length;
      this.error = null;
      if (!this.autoSelected && this.selectedRunId === null && q.runs.length > 0) {
        this.autoSelected = true;
        this.selectedRunId = this.runs[0].id;
      }
    } catch (e) {
      this.error = errorMessage(e);
    }
    await Promise.all([this.loadApprovalInputs(), this.loadSteps(), this.loadDetail()]);
  }

  private async loadApprovalInputs() {
    const approvals = this.queue?.approvals ?? [];
    const missing = approvals.filter((a) => !(a.id in this.approvalInputs));
    const byRun: Record<string, TaskInfo[]> = {};
    for (const a of missing) (byRun[a.runId] ??= []).push(a);
    const inputs: Record<string, string> = {};
    const errors: Record<string, string> = {};
    await Promise.all(
      Object.entries(byRun).map(async ([runId, list]) => {
        try {
          const steps = await this.api.runTasks(runId);
          for (const a of list) {
            inputs[a.id] = steps
              .filter((s) => a.after.includes(s.step))
              .map((s) => s.outputText ?? "")
              .filter((t) => t !== "")
              .join("\n\n");
          }
        } catch (e) {
          for (const a of list) errors[a.id] = errorMessage(e);
        }
      }),
    );
    const live = approvals.map((a) => a.id);
    const keep = <T>(r: Record<string, T>, add: Record<string, T>) =>
      Object.fromEntries(Object.entries({ ...r, ...add }).filter(([id]) => live.includes(id)));
    this.approvalInputs = keep(this.approvalInputs, inputs);
    this.approvalInputErrors = keep(
      Object.fromEntries(Object.entries(this.approvalInputErrors).filter(([id]) => !(id in inputs))),
      errors,
    );
  }

  private async loadSteps() {
    const id = this.selectedRunId;
    if (id === null) return;
    try {
      const steps = await this.api.runTasks(id);
      if (this.selectedRunId !== id) return;
      this.steps = steps;
      this.stepsError = null;
    } catch (e) {
      if (this.selectedRunId === id) this.stepsError = errorMessage(e);
    }
  }

  private async loadDetail() {
    const id = this.selectedTaskId;
    if (id === null) return;
    try {
      const detail = await this.api.taskDetail(id);
      if (this.selectedTaskId !== id) return;
      this.detail = detail;
      this.detailError = null;
    } catch (e) {
      if (this.selectedTaskId === id) this.detailError = errorMessage(e);
    }
  }

  /** Shows a run's graph (null: none). */
  async selectRun(id: string | null): Promise<void> {
    this.autoSelected = true;
    if (id === this.selectedRunId) return;
    this.selectedRunId = id;
    this.steps = [];
    this.stepsError = null;
    this.selectTask(null);
    await this.loadSteps();
  }

  /** Shows a step's detail (null: none). */
  async selectTask(id: string | null): Promise<void> {
    this.selectedTaskId = id;
    this.detail = null;
    this.detailError = null;
    await this.loadDetail();
  }

  /** Shows a task by its id (a search hit, an answer's source): its run's graph with the
   * task selected. */
  async showTask(id: string): Promise<void> {
    try {
      const detail = await this.api.taskDetail(id);
      await this.selectRun(detail.task.runId);
      await this.selectTask(id);
    } catch (e) {
      this.error = errorMessage(e);
    }
  }

  /** Shows a task from the queue or an approval: its run's graph with the task selected. */
  async show(task: TaskInfo): Promise<void> {
    await this.selectRun(task.runId);
    await this.selectTask(task.id);
  }

  async loadTemplates(): Promise<void> {
    try {
      this.templates = await this.api.taskTemplates();
      this.templatesError = null;
    } catch (e) {
      this.templatesError = errorMessage(e);
    }
  }

  async loadSchedules(): Promise<void> {
    try {
      this.schedules = await this.api.taskSchedules();
      this.schedulesError = null;
    } catch (e) {
      this.schedulesError = errorMessage(e);
    }
  }

  /**
   * Runs a control: its buttons are disabled meanwhile; a failure is kept in `notice` (shown
   * where it happened) and returned; everything is read again afterwards.
   */
  private async act(key: string, place: Place, fn: () => Promise<unknown>): Promise<string | null> {
    if (this.pending[key]) return null;
    this.pending[key] = true;
    let failed: string | null = null;
    try {
      await fn();
      if (this.notice?.place === place) this.notice = null;
    } catch (e) {
      failed = errorMessage(e);
      this.notice = { place, text: failed };
    } finally {
      delete this.pending[key];
    }
    await this.refresh();
    return failed;
  }

  busy(key: string): boolean {
    return this.pending[key] === true;
  }

  /** Cancels a task (and what waits for it) or, given a run's id, the whole run. */
  cancel(id: string, place: Place = "queue") {
    return this.act(`cancel:${id}`, place, () => this.api.cancelTask(id));
  }

  retry(id: string) {
    return this.act(`retry:${id}`, "detail", () => this.api.retryTask(id));
  }

  approve(id: string, edited: string | null) {
    return this.act(`decide:${id}`, "approval", () => this.api.approveTask(id, edited));
  }

  reject(id: string, reason: string) {
    return this.act(`decide:${id}`, "approval", () => this.api.rejectTask(id, reason.trim()));
  }

  /** Moves a waiting task just before another. */
  move(id: string, before: string | null) {
    if (id === before) return Promise.resolve(null);
    return this.act(`move:${id}`, "queue", () => this.api.moveTask(id, before));
  }

  /** Moves a waiting task one place up or down among the tasks that have not started. */
  nudge(id: string, by: -1 | 1) {
    const list = (this.queue?.waiting ?? []).filter((t) => t.state !== "running");
    const at = list.findIndex((t) => t.id === id);
    if (at < 0) return Promise.resolve(null);
    if (by < 0) return at > 0 ? this.move(id, list[at - 1].id) : Promise.resolve(null);
    if (at + 1 >= list.length) return Promise.resolve(null);
    // Down one: the next task goes before this one.
    return this.move(list[at + 1].id, id);
  }

  togglePaused() {
    const paused = !this.paused;
    return this.act("pause", "header", () => this.api.setQueuePaused(paused));
  }

  /** Starts a run and shows it; a failure is thrown for the form to show. */
  async start(key: string, params: Record<string, unknown>): Promise<string> {
    const id = await this.api.startTemplate(key, params);
    await this.selectRun(id);
    await this.refresh();
    return id;
  }

  /** Follows changes while the view is shown: on every change event, and every second while something runs. Returns the stop. */
  live(): () => void {
    let stopped = false;
    let unlisten: (() => void) | null = null;
    void this.refresh();
    // Templates imported meanwhile (`baton templates import`) show up when the view opens.
    void this.loadTemplates();
    void this.loadSchedules();
    this.api
      .onTasksChanged(() => void this.refresh())
      .then((stop) => (stopped ? stop() : (unlisten = stop)))
      .catch((e) => (this.error ??= `Live updates are off: ${errorMessage(e)}`));
    const timer = setInterval(() => {
      if (this.anyRunning) void this.refresh();
    }, 1000);
    return () => {
      stopped = true;
      unlisten?.();
      clearInterval(timer);
    };
  }
}

/** Whether a run can still be cancelled. */
export const runActive = (state: string) => state === "running" || state === "waiting_approval";
