// The Settings → Engines tab, the first-start model choice and Statistics → Evaluation,
// against the in-memory fake API.
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { afterEach, describe, expect, it } from "vitest";
import App from "../App.svelte";
import { fakeApi, fakeEngine, fakeFit, fakeModel, fakeScore } from "../lib/fake-api";

async function openSettingsTab(tab: string) {
  await waitFor(() => expect(screen.getByTestId("open-settings")).toBeTruthy());
  screen.getByTestId("open-settings").click();
  await waitFor(() => expect(screen.getByTestId(`tab-${tab}`)).toBeTruthy());
  screen.getByTestId(`tab-${tab}`).click();
}

async function fill(testId: string, value: string) {
  await fireEvent.input(screen.getByTestId(testId), { target: { value } });
}

describe("Settings → Engines", () => {
  afterEach(() => cleanup());

  it("explains remote engines when there are none", async () => {
    render(App, { props: { api: fakeApi().api } });
    await openSettingsTab("engines");
    const empty = await screen.findByTestId("engines-empty");
    expect(empty.textContent).toMatch(/Ollama/);
    expect(empty.textContent).toMatch(/OpenRouter/);
    expect(empty.textContent).toMatch(/models on this machine still answer/);
  });

  it("shows the runtime's message inline when the endpoint cannot be reached, and keeps the form", async () => {
    render(App, { props: { api: fakeApi().api } });
    await openSettingsTab("engines");
    await screen.findByTestId("engine-form");
    await fill("engine-name", "lab");
    await fill("engine-url", "http://127.0.0.1:9/v1");
    screen.getByTestId("add-engine").click();
    const error = await screen.findByTestId("engine-error");
    expect(error.textContent).toMatch(/unreachable.*is the server running/);
    expect((screen.getByTestId("engine-url") as HTMLInputElement).value).toBe("http://127.0.0.1:9/v1");
    expect(screen.getByTestId("engines-empty")).toBeTruthy();
  });

  it("refuses a negative price before asking the runtime", async () => {
    render(App, { props: { api: fakeApi().api } });
    await openSettingsTab("engines");
    await screen.findByTestId("engine-form");
    await fill("engine-name", "lab");
    await fill("engine-url", "http://127.0.0.1:11434/v1");
    await fill("engine-input-price", "-1");
    await waitFor(() => expect(screen.getByText(/a number, 0 or more/)).toBeTruthy());
    expect((screen.getByTestId("add-engine") as HTMLButtonElement).disabled).toBe(true);
  });

  it("adds an engine: the key goes to the runtime and is never shown; test and remove with a confirmation", async () => {
    const fake = fakeApi();
    render(App, { props: { api: fake.api } });
    await openSettingsTab("engines");
    await screen.findByTestId("engine-form");
    await fill("engine-name", "router");
    await fill("engine-url", "https://openrouter.example/api/v1");
    await fill("engine-key", "sk-very-secret");
    await fill("engine-input-price", "0.15");
    await fill("engine-output-price", "0.6");
    screen.getByTestId("add-engine").click();
    await screen.findByTestId("engine-added");
    expect(fake.keys.get("router")).toBe("sk-very-secret");
    const row = await screen.findByTestId("engine-row");
    expect(row.textContent).toMatch(/router\/llama3\.2/);
    expect(row.textContent).toMatch(/\$0\.15 in · \$0\.6 out per million tokens/);
    expect(row.textContent).toMatch(/key in the OS keyring/);
    expect(document.body.innerHTML).not.toMatch(/sk-very-secret/);
    expect((screen.getByTestId("engine-key") as HTMLInputElement).value).toBe("");

    within(row).getByTestId("test-engine").click();
    const test = await within(row).findByTestId("engine-test");
    expect(test.textContent).toMatch(/Answers in 42 ms · 2 model\(s\): llama3\.2, qwen2\.5/);

    within(row).getByTestId("remove-engine").click();
    expect(fake.engines).toHaveLength(1); // nothing happens before the confirmation
    (await screen.findByTestId("confirm-remove-engine")).click();
    await screen.findByTestId("engines-empty");
    expect(fake.engines).toHaveLength(0);
    expect(fake.keys.size).toBe(0);
  });

  it("shows a failing engine's breaker and the test's error", async () => {
    render(App, { props: { api: fakeApi({ engines: [fakeEngine("gpu", { breaker: "open", failureRate: 0.8 })] }).api } });
    await openSettingsTab("engines");
    const row = await screen.findByTestId("engine-row");
    expect(row.textContent).toMatch(/failing: paused · 80% failing/);
    within(row).getByTestId("test-engine").click();
    expect((await within(row).findByTestId("engine-test")).textContent).toMatch(/✕ .*unreachable/);
  });
});

describe("first-start model choice", () => {
  afterEach(() => cleanup());
  const fits = () => [
    fakeFit("big", { rank: 3, size: 1.1e9, why: "1.1 GB runs on 2 CPU cores in 1.6 GiB of memory" }),
    fakeFit("medium", { rank: 2, installed: true, measuredTokensPerSecond: 14.25, evalPassRate: 0.42 }),
    fakeFit("huge", { rank: 4, fits: false, why: "needs about 9.9 GiB; half of this machine's 8 GiB is 4.0 GiB" }),
  ];

  it("asks which model to use, with what the runtime knows about each", async () => {
    render(App, { props: { api: fakeApi({ fits: fits(), models: [fakeModel("medium")] }).api } });
    const dialog = await screen.findByTestId("model-choice-dialog");
    const rows = within(dialog).getAllByTestId("choice-row");
    expect(rows).toHaveLength(3);
    const byName = (n: string) => rows.find((r) => r.dataset.model === n)!;
    expect(within(byName("big")).getByTestId("recommended")).toBeTruthy();
    expect(byName("big").textContent).toMatch(/1\.1 GB download/);
    expect(byName("big").textContent).toMatch(/Download and use/);
    expect(byName("medium").textContent).toMatch(/installed/);
    expect(byName("medium").textContent).toMatch(/14\.3 tok\/s here/);
    expect(byName("medium").textContent).toMatch(/42% of evaluation questions/);
    expect(byName("medium").textContent).toMatch(/in use now/);
    expect(byName("huge").textContent).toMatch(/Too demanding here: needs about 9\.9 GiB/);
    expect(dialog.textContent).toMatch(/2 cores, 23 GiB RAM, no GPU/);
  });

  it("“Decide later” closes it and it is not asked again", async () => {
    const fake = fakeApi({ fits: fits(), models: [fakeModel("medium")] });
    render(App, { props: { api: fake.api } });
    (await screen.findByTestId("choice-later")).click();
    await waitFor(() => expect(screen.queryByTestId("model-choice-dialog")).toBeNull());
    expect(fake.deferredChoice()).toBe(true);
    expect((await fake.api.modelChoice()).ask).toBe(false);
  });

  it("choosing a missing model downloads it with progress, makes it the default and closes", async () => {
    const fake = fakeApi({ fits: fits(), models: [fakeModel("medium")], fetch: "ok" });
    render(App, { props: { api: fake.api } });
    const dialog = await screen.findByTestId("model-choice-dialog");
    const big = within(dialog).getAllByTestId("choice-row").find((r) => r.dataset.model === "big")!;
    within(big).getByTestId("choose-model").click();
    await waitFor(() => expect(screen.queryByTestId("model-choice-dialog")).toBeNull());
    const choice = await fake.api.modelChoice();
    expect(choice.current).toBe("big");
    expect(choice.chosen).toBe(true);
    expect((await fake.api.status()).defaultModel).toBe("big");
    // Settings → Models shows the same choice, with the default marked.
    await openSettingsTab("models");
    await waitFor(() => {
      const row = screen.getAllByTestId("choice-row").find((r) => r.dataset.model === "big")!;
      expect(within(row).getByTestId("in-use").textContent).toBe("default");
    });
  });

  it("a download can be cancelled; the dialog stays to choose again", async () => {
    const fake = fakeApi({ fits: fits(), models: [fakeModel("medium")], fetch: "wait" });
    render(App, { props: { api: fake.api } });
    const dialog = await screen.findByTestId("model-choice-dialog");
    const big = () => within(dialog).getAllByTestId("choice-row").find((r) => r.dataset.model === "big")!;
    within(big()).getByTestId("choose-model").click();
    await within(big()).findByTestId("choice-progress");
    expect((within(dialog).getByTestId("choice-later") as HTMLButtonElement).disabled).toBe(true);
    within(big()).getByTestId("choice-cancel").click();
    const note = await within(big()).findByTestId("choice-error");
    expect(note.textContent).toMatch(/cancelled/);
    expect(note.className).toMatch(/muted/);
    expect(screen.getByTestId("model-choice-dialog")).toBeTruthy();
    expect((await fake.api.modelChoice()).chosen).toBe(false);
  });

  it("is not shown when the config pins a model, nor when only one model fits", async () => {
    render(App, { props: { api: fakeApi({ fits: fits(), pinned: "tiny" }).api } });
    await openSettingsTab("models");
    expect((await screen.findByTestId("choice-pinned")).textContent).toMatch(/chat\.default_model = "tiny"/);
    expect(screen.queryByTestId("model-choice-dialog")).toBeNull();
    cleanup();
    const one = fakeApi({ fits: [fakeFit("only"), fakeFit("huge", { fits: false })] });
    render(App, { props: { api: one.api } });
    await openSettingsTab("models");
    await screen.findByTestId("model-choice");
    expect(screen.queryByTestId("model-choice-dialog")).toBeNull();
  });
});

describe("Statistics → Evaluation", () => {
  afterEach(() => cleanup());

  async function openEvaluation() {
    await waitFor(() => expect(screen.getByTestId("open-stats")).toBeTruthy());
    screen.getByTestId("open-stats").click();
    (await screen.findByTestId("stats-tab-evaluation")).click();
  }

  it("tells how to run an evaluation when there is none", async () => {
    render(App, { props: { api: fakeApi().api } });
    await openEvaluation();
    const empty = await screen.findByTestId("eval-empty");
    expect(empty.textContent).toMatch(/baton eval/);
    expect(within(empty).getByTestId("run-eval")).toBeTruthy();
  });

  it("shows a run's failure to start in the view", async () => {
    render(App, { props: { api: fakeApi().api } });
    await openEvaluation();
    (await screen.findByTestId("run-eval")).click();
    expect((await screen.findByTestId("eval-error")).textContent).toMatch(/no chat model is installed/);
  });

  it("runs the built-in sets with a limit, then shows scores per domain with intervals, a chart and the run", async () => {
    const fake = fakeApi({ models: [fakeModel("tiny")] });
    render(App, { props: { api: fake.api } });
    await openEvaluation();
    const limit = (await screen.findByTestId("eval-limit")) as HTMLSelectElement;
    await fireEvent.change(limit, { target: { value: limit.options[0].value } });
    screen.getByTestId("run-eval").click();
    const finished = await screen.findByTestId("eval-finished");
    expect(finished.textContent).toMatch(/finished: 10 answers, 5 passed/);
    const table = await screen.findByTestId("eval-scores");
    const row = within(table).getByTestId("eval-row");
    expect(row.textContent).toMatch(/tiny/);
    expect(within(row).getByTestId("eval-cell-math").textContent).toMatch(/50%\s*1\/2 · 30–70%/);
    expect(within(row).getByTestId("eval-cell-all").getAttribute("title")).toMatch(/5 of 10 passed \(50%\); 95% interval 30–70%/);
    const headers = [...table.querySelectorAll("th")].map((th) => th.textContent?.trim());
    expect(headers).toEqual(["Model", "general", "math", "code", "writing", "translation", "all"]);
    expect(within(row).getByTestId("eval-speed").textContent).toBe("1.5 s per answer · 12.5 tok/s");
    const chart = screen.getByTestId("eval-chart");
    expect(chart.querySelectorAll("rect")).toHaveLength(6);
    expect([...chart.querySelectorAll("text.value")].map((t) => t.textContent)).toEqual(["50%", "50%", "50%", "50%", "50%", "50%"]);
    expect(screen.getByTestId("eval-legend").textContent).toMatch(/tiny\/single/);
    const run = screen.getByTestId("eval-run");
    expect(run.textContent).toMatch(/#1/);
    expect(run.textContent).toMatch(/tiny\/single/);
    expect(run.textContent).toMatch(/done/);
  });

  it("shows progress while it runs, and cancel keeps what was scored", async () => {
    const fake = fakeApi({ models: [fakeModel("tiny")], evalWaits: true, evalScores: [fakeScore("old", "all", 1, 2)] });
    render(App, { props: { api: fake.api } });
    await openEvaluation();
    (await screen.findByTestId("run-eval")).click();
    const progress = await screen.findByTestId("eval-progress");
    await waitFor(() => expect(progress.textContent).toMatch(/Evaluating: 1 of 50 answers/));
    expect(progress.textContent).toMatch(/tiny · general-001 ✓ passed/);
    screen.getByTestId("cancel-eval").click();
    expect((await screen.findByTestId("eval-finished")).textContent).toMatch(/cancelled after 1 answers, 1 passed; what was scored is kept/);
    expect(screen.queryByTestId("eval-progress")).toBeNull();
    await waitFor(() => expect(screen.getAllByTestId("eval-run")[0].textContent).toMatch(/cancelled/));
  });
});
