// Memory in the window: Settings → Memory, search over everything stored, an answer's
// sources, a chat's memory switch and the summary of older turns, against the fake API.
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { afterEach, describe, expect, it } from "vitest";
import App from "../App.svelte";
import { fakeApi } from "../lib/fake-api";

const NOTES = {
  "/home/a/notes/marmalade.md": "# Seville marmalade\n\nBoil the oranges whole for two hours, then slice them thin.",
  "/home/a/notes/harbour.txt": "The harbour festival starts at noon on Saturday.",
  "/home/a/notes/photo.png": null,
};

async function openMemoryTab() {
  await waitFor(() => expect(screen.getByTestId("open-settings")).toBeTruthy());
  screen.getByTestId("open-settings").click();
  (await screen.findByTestId("tab-memory")).click();
}

async function addNotes() {
  await fireEvent.input(await screen.findByTestId("docs-path"), { target: { value: "/home/a/notes" } });
  screen.getByTestId("add-docs").click();
  return screen.findByTestId("doc-root");
}

describe("Settings → Memory", () => {
  afterEach(() => cleanup());

  it("says how to install the embedding model and what leaves the machine", async () => {
    const fake = fakeApi();
    render(App, { props: { api: fake.api } });
    await openMemoryTab();
    expect((await screen.findByTestId("embedding-missing")).textContent).toMatch(/baton models fetch all-minilm-l6-v2/);
    expect(screen.getByTestId("memory-privacy").textContent).toMatch(/stays on this machine/);
    await waitFor(() => expect((screen.getByTestId("memory-remote") as HTMLInputElement).disabled).toBe(false));
    await fireEvent.click(screen.getByTestId("memory-remote"));
    await waitFor(() => expect(screen.getByTestId("memory-privacy").textContent).toMatch(/leaves this machine/));
    expect(fake.memory.remote).toBe(true);
    await fireEvent.click(screen.getByTestId("memory-enabled"));
    await waitFor(() => expect(fake.memory.enabled).toBe(false));
  });

  it("back-fills with progress when the model is installed", async () => {
    const fake = fakeApi({ embeddingModel: true, files: NOTES });
    render(App, { props: { api: fake.api } });
    await openMemoryTab();
    await addNotes();
    const state = await screen.findByTestId("embedding-state");
    await waitFor(() => expect(state.textContent).toMatch(/0 of 2 texts searchable by meaning/));
    within(state).getByTestId("backfill").click();
    await waitFor(() => expect((within(state).queryByTestId("backfill") as HTMLButtonElement | null)?.disabled).toBe(true));
    expect(state.textContent).toMatch(/All 2 texts searchable by meaning/);
    expect(state.textContent).toMatch(/Back-fill embedded 2 texts/);
  });

  it("adds a folder, lists its files with the skipped one's reason, shows errors, and removes it", async () => {
    const fake = fakeApi({ files: NOTES });
    render(App, { props: { api: fake.api } });
    await openMemoryTab();
    expect(await screen.findByTestId("docs-empty")).toBeTruthy();

    await fireEvent.input(screen.getByTestId("docs-path"), { target: { value: "/nowhere" } });
    screen.getByTestId("add-docs").click();
    expect((await screen.findByTestId("docs-error")).textContent).toMatch(/\/nowhere cannot be added: No such file/);

    const root = await addNotes();
    expect(screen.queryByTestId("docs-error")).toBeNull();
    expect(within(root).getByTestId("doc-root-facts").textContent).toMatch(/2 files · 2 chunks · .* · 1 skipped/);
    expect(within(root).getByTestId("docs-report").textContent).toMatch(/2 new, 1 skipped/);
    const files = await within(root).findAllByTestId("doc-file");
    expect(files.map((f) => f.dataset.state)).toEqual(["indexed", "indexed", "skipped"]);
    expect(files[0].textContent).toMatch(/harbour\.txt/);
    expect(within(root).getByTestId("doc-skip-reason").textContent).toMatch(/skipped: a binary file/);

    within(root).getByTestId("doc-root-toggle").click();
    await waitFor(() => expect(within(root).queryByTestId("doc-files")).toBeNull());

    within(root).getByTestId("reindex-docs").click();
    await waitFor(() => expect(within(root).getByTestId("docs-report").textContent).toMatch(/3 unchanged, 1 skipped/));

    within(root).getByTestId("remove-docs").click();
    expect(fake.roots).toHaveLength(1);
    (await screen.findByTestId("confirm-remove-docs")).click();
    await screen.findByTestId("docs-empty");
    expect(fake.roots).toHaveLength(0);
  });
});

describe("search over memory", () => {
  afterEach(() => cleanup());

  it("finds documents and chats with why they matched, narrows by kind, opens a passage", async () => {
    const fake = fakeApi({ files: NOTES, embeddingModel: true });
    await fake.api.addDocuments("/home/a/notes", () => {});
    const s = await fake.api.createSession("Oranges");
    await fake.api.send(s.id, "Which oranges make marmalade?", null, "single", () => {});
    render(App, { props: { api: fake.api } });
    await waitFor(() => expect(screen.getByTestId("search")).toBeTruthy());
    await fireEvent.input(screen.getByTestId("search"), { target: { value: "marmalade" } });
    await waitFor(() => expect(screen.getAllByTestId("search-result")).toHaveLength(2));
    const [chatHit, docHit] = screen.getAllByTestId("search-result");
    expect(chatHit.dataset.kind).toBe("message");
    expect(docHit.dataset.kind).toBe("chunk");
    expect(docHit.textContent).toMatch(/marmalade\.md/);
    expect(docHit.querySelector("mark")?.textContent).toBe("marmalade");
    const why = within(docHit).getByTestId("search-why").textContent ?? "";
    expect(why).toMatch(/Document/);
    expect(why).toMatch(/words ranked #2/);
    expect(why).toMatch(/meaning 88% similar · #2/);

    screen.getByTestId("search-kind-chunk").click();
    await waitFor(() => expect(screen.getAllByTestId("search-result")).toHaveLength(1));
    expect(screen.getByTestId("search-result").dataset.kind).toBe("chunk");

    screen.getByTestId("search-result").click();
    const peek = await screen.findByTestId("document-peek");
    expect(within(peek).getByTestId("peek-path").textContent).toBe("/home/a/notes/marmalade.md");
    // The whole chunk, with the words the search matched marked.
    expect(peek.textContent).toMatch(/slice them thin/);
    expect([...peek.querySelectorAll("blockquote mark")].map((m) => m.textContent)).toEqual(["marmalade"]);
    within(peek).getByTestId("ask-passage").click();
    await waitFor(() => expect(screen.queryByTestId("document-peek")).toBeNull());
    await waitFor(() => expect((screen.getByTestId("composer") as HTMLTextAreaElement).value).toMatch(/^> # Seville marmalade\n>\s*\n> Boil the oranges/));
  });

  it("opens a chat hit in its session with the message highlighted", async () => {
    const fake = fakeApi();
    const a = await fake.api.createSession("Tides");
    await fake.api.send(a.id, "Explain the tides", null, "single", () => {});
    await fake.api.createSession("Other");
    render(App, { props: { api: fake.api } });
    await waitFor(() => expect(screen.getByTestId("search")).toBeTruthy());
    await fireEvent.input(screen.getByTestId("search"), { target: { value: "tides" } });
    (await screen.findByTestId("search-result")).click();
    await waitFor(() => expect(screen.getByTestId("chat-title").textContent).toBe("Tides"));
    await waitFor(() => expect(document.querySelector(".msg.highlighted")?.textContent).toMatch(/Explain the tides/));
  });
});

describe("memory in a chat", () => {
  afterEach(() => cleanup());

  it("shows an answer's sources as numbered chips that open their snippet and where it came from", async () => {
    const fake = fakeApi({
      sources: [
        { n: 1, kind: "chunk", refId: 4, title: "marmalade.md", text: "Boil the oranges whole for two hours.", sessionId: null, location: "/home/a/notes/marmalade.md" },
        { n: 2, kind: "message", refId: 9, title: "Breakfast plans", text: "Seville oranges arrive in January.", sessionId: "s-old", location: null },
      ],
    });
    render(App, { props: { api: fake.api } });
    const composer = (await screen.findByTestId("composer")) as HTMLTextAreaElement;
    await fireEvent.input(composer, { target: { value: "How long do the oranges boil?" } });
    await fireEvent.keyDown(composer, { key: "Enter" });
    const chips = await screen.findAllByTestId("source-chip");
    expect(chips.map((c) => c.textContent?.replace(/\s+/g, " ").trim())).toEqual(["1 marmalade.md", "2 Breakfast plans"]);
    chips[0].click();
    const detail = await screen.findByTestId("source-detail");
    expect(detail.textContent).toMatch(/Boil the oranges whole/);
    expect(detail.textContent).toMatch(/Document · \/home\/a\/notes\/marmalade\.md/);
    within(detail).getByTestId("open-source").click();
    expect(within(await screen.findByTestId("document-peek")).getByTestId("peek-path").textContent).toBe("/home/a/notes/marmalade.md");
  });

  it("switches memory for one chat and shows the default from Settings", async () => {
    const fake = fakeApi();
    await fake.api.createSession("Plans");
    render(App, { props: { api: fake.api } });
    const picker = (await screen.findByTestId("memory-picker")) as HTMLSelectElement;
    expect(picker.value).toBe("default");
    expect(picker.selectedOptions[0].textContent).toBe("Default (on)");
    await fireEvent.change(picker, { target: { value: "off" } });
    await waitFor(() => expect(fake.sessions[0].memory).toBe(false));
    expect(picker.value).toBe("off");
  });

  it("shows the summary of older turns after the last message it covers", async () => {
    const fake = fakeApi();
    const s = await fake.api.createSession("Long talk");
    await fake.api.send(s.id, "First question", null, "single", () => {});
    await fake.api.send(s.id, "Second question", null, "single", () => {});
    const ids = fake.messages.get(s.id)!.map((m) => m.id);
    fake.summaries.set(s.id, { throughId: ids[1], content: "They talked about **tides**.", model: "tiny", createdAt: new Date().toISOString() });
    render(App, { props: { api: fake.api } });
    const summary = await screen.findByTestId("turn-summary");
    expect(summary.textContent).toMatch(/Earlier turns summarised/);
    expect(summary.textContent).toMatch(/The 2 messages above no longer fit/);
    expect(within(summary).getByTestId("turn-summary-text").innerHTML).toMatch(/<strong>tides<\/strong>/);
    const list = [...document.querySelectorAll("[data-message-id], [data-testid=turn-summary]")];
    expect(list.map((e) => (e as HTMLElement).dataset.messageId ?? "summary")).toEqual([String(ids[0]), String(ids[1]), "summary", String(ids[2]), String(ids[3])]);
  });
});
