import { cleanup, render, screen, waitFor } from "@testing-library/svelte";
import { afterEach, describe, expect, it } from "vitest";
import App from "./App.svelte";
import { fakeApi } from "./lib/fake-api";

describe("App", () => {
  afterEach(() => cleanup());

  it("shows the startup error and what to do, never a blank window", async () => {
    const { api } = fakeApi({ startupError: "/data/baton.sqlite3 is not a Baton database" });
    render(App, { props: { api } });
    await waitFor(() => expect(screen.getByTestId("startup-error")).toBeTruthy());
    expect(screen.getByText(/is not a Baton database/)).toBeTruthy();
    expect(screen.getByText("What to do")).toBeTruthy();
  });

  it("shows the welcome state with a hint when no model is registered", async () => {
    const { api } = fakeApi();
    render(App, { props: { api } });
    await waitFor(() => expect(screen.getByTestId("empty-state")).toBeTruthy());
    expect(screen.getByText("Welcome to Baton")).toBeTruthy();
    expect(screen.getByText(/No model is registered yet/)).toBeTruthy();
    expect(screen.getByTestId("new-chat")).toBeTruthy();
  });

  it("shows statistics per model and mode with the selection accuracy", async () => {
    const { api } = fakeApi();
    render(App, { props: { api } });
    await waitFor(() => expect(screen.getByTestId("open-stats")).toBeTruthy());
    screen.getByTestId("open-stats").click();
    await waitFor(() => expect(screen.getByTestId("stats-models")).toBeTruthy());
    expect(screen.getByTestId("selection-accuracy").textContent).toContain("100%");
    expect(screen.getByTestId("stats-models").textContent).toContain("67% · 1 failed");
  });

  it("puts dictated text into the composer once, after what was typed", async () => {
    const { api, subscribedToVoice } = fakeApi({ heard: [{ kind: "speechStarted" }, { kind: "partial", text: "remind" }, { kind: "final", text: "remind me at noon" }] });
    const saved = await api.getPreferences();
    await api.setPreferences({ ...saved.preferences, voice: { afterSpeech: "insert", autoSpeak: false } });
    const view = render(App, { props: { api } });
    await waitFor(() => expect(view.getByTestId("mic")).toBeTruthy());
    await waitFor(() => expect(subscribedToVoice()).toBe(true)); // the window subscribes after loading
    const composer = view.getByTestId("composer") as HTMLTextAreaElement;
    composer.value = "Note:";
    composer.dispatchEvent(new Event("input", { bubbles: true }));
    view.getByTestId("mic").click();
    await waitFor(() => expect(composer.value).toBe("Note: remind me at noon"));
    // Listening has ended, and the text was put in once (not again by the end event).
    await waitFor(() => expect(view.queryByTestId("voice-input")).toBeNull());
    expect(composer.value).toBe("Note: remind me at noon");
    expect(view.queryAllByTestId("message-user")).toHaveLength(0);
  });
});
