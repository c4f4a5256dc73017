// The Tasks view against the fake API's task queue: the sidebar's badge, the form made from a
// template's schema, approvals, the queue's controls, the run graph and the step detail.
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { afterEach, describe, expect, it } from "vitest";
import App from "../App.svelte";
import { fakeApi } from "../lib/fake-api";

async function openTasks() {
  await waitFor(() => expect(screen.getByTestId("open-tasks")).toBeTruthy());
  screen.getByTestId("open-tasks").click();
  await screen.findByTestId("tasks-view");
}

/** A reviewed-post run whose draft is done and whose review waits for a person. */
function withApproval() {
  const fake = fakeApi();
  const runId = fake.tasks.addRun("reviewed-post@1", { topic: "Release notes" });
  fake.tasks.advance(); // draft runs
  fake.tasks.advance(); // draft succeeds; review waits
  const review = fake.tasks.runs[0].tasks.find((t) => t.step === "review")!;
  expect(review.state).toBe("waiting_approval");
  return { fake, runId, review };
}

const node = (step: string) => screen.getAllByTestId("dag-node").find((n) => n.getAttribute("data-step") === step)!;

describe("Tasks", () => {
  afterEach(() => cleanup());

  it("shows the number of approvals on the sidebar's Tasks button, and follows it", async () => {
    const { fake, review } = withApproval();
    render(App, { props: { api: fake.api } });
    const badge = await screen.findByTestId("tasks-badge");
    expect(badge.textContent?.trim()).toBe("1");
    expect(screen.getByTestId("open-tasks").className).not.toMatch(/active-view/);
    await fake.api.approveTask(review.id, null); // elsewhere (the CLI): the event updates the badge
    await waitFor(() => expect(screen.queryByTestId("tasks-badge")).toBeNull());
    fake.tasks.addRun("reviewed-post@1", { topic: "Two" });
    fake.tasks.advance();
    fake.tasks.advance();
    await waitFor(() => expect(screen.getByTestId("tasks-badge").textContent?.trim()).toBe("1"));
    await openTasks();
    expect(screen.getByTestId("open-tasks").className).toMatch(/active-view/);
  });

  it("opens from the tray's Tasks item (the showTasks action)", async () => {
    const fake = fakeApi({ pendingActions: [{ kind: "showTasks" }] });
    render(App, { props: { api: fake.api } });
    await screen.findByTestId("tasks-view");
    const empty = await screen.findByTestId("tasks-empty");
    expect(empty.textContent).toMatch(/Nothing queued yet/);
    expect(await screen.findAllByTestId("schedule-item")).toHaveLength(2);
  });

  it("builds the form from the template's schema and starts a run with typed parameters", async () => {
    const fake = fakeApi();
    render(App, { props: { api: fake.api } });
    await openTasks();
    screen.getByTestId("run-template").click();
    const form = await screen.findByTestId("template-form");
    const select = (await within(form).findByTestId("template-select")) as HTMLSelectElement;
    expect([...select.options].map((o) => o.value)).toEqual(["meeting-notes@1", "reviewed-post@1"]);
    expect(select.value).toBe("meeting-notes@1");
    expect(form.textContent).toMatch(/Transcribe a meeting recording/);

    // One control per field, by its kind, with the defaults filled in.
    const audio = screen.getByTestId("param-audio") as HTMLInputElement;
    expect(audio.type).toBe("text");
    expect(audio.required).toBe(true);
    expect(audio.closest(".param")!.textContent).toMatch(/Recording\*/);
    expect(audio.closest(".param")!.textContent).toMatch(/The meeting's audio file/);
    expect((screen.getByTestId("param-language") as HTMLInputElement).value).toBe("auto");
    const speakers = screen.getByTestId("param-speakers") as HTMLInputElement;
    expect(speakers.type).toBe("number");
    expect(speakers.value).toBe("2");
    const detail = screen.getByTestId("param-detail") as HTMLSelectElement;
    expect(detail.tagName).toBe("SELECT");
    expect([...detail.options].map((o) => o.value)).toEqual(["", "short", "detailed"]);
    expect(detail.value).toBe("short");
    const stamps = screen.getByTestId("param-timestamps") as HTMLInputElement;
    expect(stamps.type).toBe("checkbox");
    expect(stamps.checked).toBe(false);
    const keywords = screen.getByTestId("param-keywords") as HTMLTextAreaElement;
    expect(keywords.tagName).toBe("TEXTAREA");
    expect(keywords.value).toBe('["Baton"]');

    // Without the required recording, the backend's message shows in the form.
    screen.getByTestId("start-run").click();
    const error = await screen.findByTestId("template-error");
    expect(error.textContent).toContain('"audio" is a required property');
    expect(fake.tasks.runs).toHaveLength(0);

    await fireEvent.input(audio, { target: { value: "standup.wav" } });
    await fireEvent.input(speakers, { target: { value: "3" } });
    await fireEvent.change(detail, { target: { value: "detailed" } });
    await fireEvent.click(stamps);
    await fireEvent.input(keywords, { target: { value: "roadmap, budget" } });
    screen.getByTestId("start-run").click();
    await waitFor(() => expect(fake.tasks.calls.started).toHaveLength(2));
    expect(fake.tasks.calls.started[1]).toEqual({
      key: "meeting-notes@1",
      params: { audio: "standup.wav", language: "auto", speakers: 3, detail: "detailed", timestamps: true, keywords: ["roadmap", "budget"] },
    });

    // The new run is selected and its graph drawn: a diamond in three layers.
    await waitFor(() => expect(screen.queryByTestId("template-form")).toBeNull());
    const item = await screen.findByTestId("run-item");
    expect(item.getAttribute("data-run")).toBe("run-1");
    expect(item.className).toMatch(/active/);
    await waitFor(() => expect(screen.getAllByTestId("dag-node")).toHaveLength(4));
    const x = (step: string) => Number(node(step).getAttribute("transform")!.match(/translate\(([\d.]+)/)![1]);
    expect(x("transcript")).toBeLessThan(x("summary"));
    expect(x("summary")).toBe(x("actions"));
    expect(x("actions")).toBeLessThan(x("notes"));
    expect(screen.getAllByTestId("dag-edge")).toHaveLength(4);
    expect(node("transcript").getAttribute("data-state")).toBe("ready");
  });

  it("refuses unreadable JSON before asking the backend", async () => {
    const fake = fakeApi();
    render(App, { props: { api: fake.api } });
    await openTasks();
    screen.getByTestId("run-template").click();
    const select = await screen.findByTestId("template-select");
    await fireEvent.change(select, { target: { value: "reviewed-post@1" } });
    await waitFor(() => expect(screen.getByTestId("param-topic")).toBeTruthy());
    expect((screen.getByTestId("param-words") as HTMLInputElement).value).toBe("120");
    await fireEvent.input(screen.getByTestId("param-topic"), { target: { value: "Launch" } });
    await fireEvent.input(screen.getByTestId("param-style"), { target: { value: "{tone: calm" } });
    screen.getByTestId("start-run").click();
    expect((await screen.findByTestId("param-error-style")).textContent).toMatch(/Not valid JSON/);
    expect(fake.tasks.calls.started).toHaveLength(0);
    await fireEvent.input(screen.getByTestId("param-style"), { target: { value: '{"tone": "calm"}' } });
    screen.getByTestId("start-run").click();
    await waitFor(() => expect(fake.tasks.calls.started).toHaveLength(1));
    expect(fake.tasks.calls.started[0]).toEqual({ key: "reviewed-post@1", params: { topic: "Launch", words: 120, style: { tone: "calm" } } });
  });

  it("approves with the edited text, which the next step gets", async () => {
    const { fake, review } = withApproval();
    render(App, { props: { api: fake.api } });
    await openTasks();
    const card = await screen.findByTestId("approval-card");
    expect(card.getAttribute("data-task")).toBe(review.id);
    expect(card.textContent).toMatch(/reviewed-post/);
    expect(card.textContent).toMatch(/review/);
    const edit = within(card).getByTestId("approval-edit") as HTMLTextAreaElement;
    await waitFor(() => expect(edit.value).toBe("draft done"));
    await fireEvent.input(edit, { target: { value: "draft done, with a better ending" } });
    expect(within(card).getByTestId("approve").textContent).toMatch(/Approve edited text/);
    within(card).getByTestId("approve").click();
    await waitFor(() => expect(fake.tasks.calls.approved).toEqual([{ id: review.id, edited: "draft done, with a better ending" }]));
    await waitFor(() => expect(screen.queryByTestId("approval-card")).toBeNull());
    expect(fake.tasks.runs[0].tasks.find((t) => t.step === "review")!.outputText).toBe("draft done, with a better ending");
  });

  it("approves unchanged text as it is (no edit sent)", async () => {
    const { fake, review } = withApproval();
    render(App, { props: { api: fake.api } });
    await openTasks();
    const card = await screen.findByTestId("approval-card");
    await waitFor(() => expect((within(card).getByTestId("approval-edit") as HTMLTextAreaElement).value).toBe("draft done"));
    within(card).getByTestId("approve").click();
    await waitFor(() => expect(fake.tasks.calls.approved).toEqual([{ id: review.id, edited: null }]));
  });

  it("rejects with a reason; what waits for the step is skipped", async () => {
    const { fake, review, runId } = withApproval();
    render(App, { props: { api: fake.api } });
    await openTasks();
    const card = await screen.findByTestId("approval-card");
    expect(within(card).queryByTestId("reject-reason")).toBeNull();
    within(card).getByTestId("reject").click();
    const reason = await within(card).findByTestId("reject-reason");
    await fireEvent.input(reason, { target: { value: "too long" } });
    within(card).getByTestId("confirm-reject").click();
    await waitFor(() => expect(fake.tasks.calls.rejected).toEqual([{ id: review.id, reason: "too long" }]));
    await waitFor(() => expect(screen.queryByTestId("approval-card")).toBeNull());
    const run = screen.getAllByTestId("run-item").find((r) => r.getAttribute("data-run") === runId)!;
    await waitFor(() => expect(run.getAttribute("data-state")).toBe("failed"));
    await waitFor(() => expect(node("publish").getAttribute("data-state")).toBe("skipped"));
    expect(node("review").getAttribute("data-state")).toBe("failed");
  });

  it("shows an approval's failure in its card", async () => {
    const { fake } = withApproval();
    fake.api.approveTask = async () => {
      throw new Error("the store is locked");
    };
    render(App, { props: { api: fake.api } });
    await openTasks();
    const card = await screen.findByTestId("approval-card");
    within(card).getByTestId("approve").click();
    expect((await within(card).findByRole("alert")).textContent).toMatch(/the store is locked/);
  });

  it("cancels a waiting task from the queue and a step from its detail", async () => {
    const fake = fakeApi();
    const runId = fake.tasks.addRun("meeting-notes@1", { audio: "a.wav" });
    fake.tasks.advance(); // transcript runs
    render(App, { props: { api: fake.api } });
    await openTasks();
    await waitFor(() => expect(screen.getAllByTestId("queue-item")).toHaveLength(4));
    const rows = screen.getAllByTestId("queue-item");
    expect(rows[0].getAttribute("data-state")).toBe("running");
    expect(rows[0].querySelector("[role=progressbar]")).toBeTruthy();
    const notes = rows.find((r) => r.querySelector(".q-step")?.textContent === "notes")!;
    within(notes).getByTestId("queue-cancel").click();
    await waitFor(() => expect(fake.tasks.calls.cancelled).toEqual([notes.getAttribute("data-task")]));
    await waitFor(() => expect(screen.getAllByTestId("queue-item")).toHaveLength(3));

    // The newest run is shown; choose a step for its detail and cancel it there.
    await waitFor(() => expect(screen.getAllByTestId("dag-node")).toHaveLength(4));
    await fireEvent.click(node("summary"));
    const detail = await screen.findByTestId("task-detail");
    await waitFor(() => expect(within(detail).getByTestId("task-state").textContent).toBe("queued"));
    expect(within(detail).getByTestId("task-attempts").textContent).toBe("0 of 3");
    expect(within(detail).getByTestId("task-input-json").textContent).toMatch(/"audio": "a.wav"/);
    expect(within(detail).getAllByTestId("task-event")[0].textContent).toMatch(/created/);
    within(detail).getByTestId("cancel-task").click();
    const summary = fake.tasks.runs[0].tasks.find((t) => t.step === "summary")!;
    await waitFor(() => expect(fake.tasks.calls.cancelled).toContain(summary.id));
    await waitFor(() => expect(node("summary").getAttribute("data-state")).toBe("cancelled"));
    await waitFor(() => expect(within(detail).getByTestId("retry-task")).toBeTruthy());
    expect(within(detail).queryByTestId("cancel-task")).toBeNull();

    // Retry, then cancel the whole run.
    within(detail).getByTestId("retry-task").click();
    await waitFor(() => expect(node("summary").getAttribute("data-state")).toBe("queued"));
    within(screen.getByTestId("task-detail")).getByTestId("cancel-run").click();
    await waitFor(() => expect(fake.tasks.calls.cancelled).toContain(runId));
    await waitFor(() => expect(screen.getByTestId("run-item").getAttribute("data-state")).toBe("cancelled"));
    expect(screen.getByTestId("queue-empty")).toBeTruthy();
  });

  it("reorders the queue by drag and drop and with Move up", async () => {
    const fake = fakeApi();
    fake.tasks.addRun("reviewed-post@1", { topic: "One" });
    fake.tasks.addRun("reviewed-post@1", { topic: "Two" });
    render(App, { props: { api: fake.api } });
    await openTasks();
    await waitFor(() => expect(screen.getAllByTestId("queue-item")).toHaveLength(6));
    const ids = () => screen.getAllByTestId("queue-item").map((r) => r.getAttribute("data-task"));
    const [a, b] = ids();
    const rows = screen.getAllByTestId("queue-item");
    await fireEvent.dragStart(rows[1]);
    await fireEvent.dragOver(rows[0]);
    expect(rows[0].className).toMatch(/drop-before/);
    await fireEvent.drop(rows[0]);
    await waitFor(() => expect(fake.tasks.calls.moved).toEqual([{ id: b, before: a }]));
    await waitFor(() => expect(ids().slice(0, 2)).toEqual([b, a]));

    const third = screen.getAllByTestId("queue-item")[2];
    const thirdId = third.getAttribute("data-task");
    within(third).getByTestId("move-up").click();
    await waitFor(() => expect(fake.tasks.calls.moved[1]).toEqual({ id: thirdId, before: a }));
    await waitFor(() => expect(ids()[1]).toBe(thirdId));
  });

  it("pauses and resumes the queue", async () => {
    const fake = fakeApi();
    fake.tasks.addRun("reviewed-post@1", { topic: "One" });
    render(App, { props: { api: fake.api } });
    await openTasks();
    const pause = screen.getByTestId("pause-queue");
    await waitFor(() => expect((pause as HTMLButtonElement).disabled).toBe(false));
    expect(pause.textContent).toMatch(/Pause queue/);
    expect(screen.queryByTestId("paused-note")).toBeNull();
    pause.click();
    await waitFor(() => expect(pause.textContent).toMatch(/Resume queue/));
    expect(screen.getByTestId("paused-note").textContent).toMatch(/Paused/);
    expect(fake.tasks.calls.paused).toEqual([true]);
    pause.click();
    await waitFor(() => expect(pause.textContent).toMatch(/Pause queue/));
    expect(fake.tasks.calls.paused).toEqual([true, false]);
  });

  it("follows the worker live and keeps the selected step", async () => {
    const fake = fakeApi();
    fake.tasks.addRun("meeting-notes@1", { audio: "a.wav" });
    render(App, { props: { api: fake.api } });
    await openTasks();
    await waitFor(() => expect(screen.getAllByTestId("dag-node")).toHaveLength(4));
    await fireEvent.click(node("transcript"));
    await screen.findByTestId("task-detail");
    fake.tasks.advance();
    await waitFor(() => expect(node("transcript").getAttribute("data-state")).toBe("running"));
    fake.tasks.advance();
    await waitFor(() => expect(node("transcript").getAttribute("data-state")).toBe("succeeded"));
    expect(node("summary").getAttribute("data-state")).toBe("running");
    const detail = screen.getByTestId("task-detail");
    await waitFor(() => expect(within(detail).getByTestId("task-output").textContent).toBe("transcript done"));
    expect(within(detail).getByTestId("task-output-json").textContent).toMatch(/"text": "transcript done"/);
    expect(node("transcript").getAttribute("aria-pressed")).toBe("true");
    expect(screen.getByTestId("run-item").textContent).toMatch(/1\/4 done/);
  });

  it("shows the schedules with their next times", async () => {
    const fake = fakeApi();
    render(App, { props: { api: fake.api } });
    await openTasks();
    const items = await screen.findAllByTestId("schedule-item");
    expect(items).toHaveLength(2);
    expect(items[0].textContent).toMatch(/morning-digest/);
    expect(items[0].textContent).toMatch(/At 08:00, Monday through Friday/);
    expect(items[0].textContent).toMatch(/0 8 \* \* 1-5/);
    expect(items[0].textContent).toMatch(/Europe\/Berlin/);
    expect(items[0].textContent).toMatch(/daily-digest/);
    expect(items[0].textContent).toMatch(/enabled/);
    expect(items[0].querySelectorAll("time")).toHaveLength(3);
    expect(items[1].textContent).toMatch(/disabled/);
  });

  it("says why when the queue cannot be read", async () => {
    const fake = fakeApi({ taskQueueError: "database is locked" });
    render(App, { props: { api: fake.api } });
    await openTasks();
    expect((await screen.findByTestId("tasks-error")).textContent).toMatch(/database is locked/);
  });
});
