import { describe, expect, it, vi } from "vitest";
import { ChatController, NEW_CHAT_TITLE } from "./chat.svelte";
import { fakeApi } from "./fake-api";

describe("ChatController", () => {
  it("creates a session, titles it from the first message and stores the streamed answer", async () => {
    const { api } = fakeApi({ tokens: ["The", " answer"] });
    const chat = new ChatController(api);
    await chat.init();
    expect(chat.sessions).toHaveLength(0);
    await chat.newChat();
    expect(chat.sessions[0].title).toBe(NEW_CHAT_TITLE);
    await chat.send("What is Baton?\nsecond line");
    expect(chat.current?.title).toBe("What is Baton?");
    expect(chat.messages.map((m) => m.role)).toEqual(["user", "assistant"]);
    expect(chat.messages[1].content).toBe("The answer");
    expect(chat.streaming).toBeNull();
    expect(chat.error).toBeNull();
  });

  it("reuses an empty new chat instead of piling them up", async () => {
    const { api } = fakeApi();
    const chat = new ChatController(api);
    await chat.init();
    await chat.newChat();
    await chat.newChat();
    expect(chat.sessions).toHaveLength(1);
  });

  it("shows a missing model as an error and keeps the question", async () => {
    const { api } = fakeApi({ tokens: null });
    const chat = new ChatController(api);
    await chat.init();
    await chat.send("hello");
    expect(chat.error?.kind).toBe("modelUnavailable");
    expect(chat.error?.message).toContain("not registered");
    expect(chat.messages.map((m) => m.content)).toEqual(["hello"]);
  });

  it("streams tokens into the view and stops on request", async () => {
    const { api } = fakeApi({ tokens: ["a", "b", "c"], waitForStop: true });
    const chat = new ChatController(api);
    await chat.init();
    const sending = chat.send("go");
    await vi.waitFor(() => expect(chat.streaming?.text).toBe("abc"));
    expect(chat.busy).toBe(true);
    await chat.stop();
    await sending;
    expect(chat.busy).toBe(false);
    expect(chat.messages.at(-1)?.content).toBe("abc");
    expect(chat.stoppedIds[chat.messages.at(-1)!.id]).toBe(true);
  });

  it("searches with a debounce and clears back to the list", async () => {
    const { api } = fakeApi({ tokens: ["fine"] });
    const chat = new ChatController(api);
    await chat.init();
    await chat.send("museums in Lisbon");
    chat.setSearch("lisbon", 0);
    await vi.waitFor(() => expect(chat.searchResults).toHaveLength(1));
    chat.clearSearch();
    expect(chat.searchResults).toBeNull();
  });

  it("a search answered after it was cleared leaves the list shown", async () => {
    const { api } = fakeApi({ tokens: ["fine"] });
    const chat = new ChatController(api);
    await chat.init();
    await chat.send("museums in Lisbon");
    chat.setSearch("lisbon", 0);
    const running = chat.runSearch("lisbon");
    chat.clearSearch();
    await running;
    expect(chat.searchResults).toBeNull();
  });

  it("narrows the search to one kind and searches again", async () => {
    const { api } = fakeApi({ tokens: ["fine"], files: { "/n/lisbon.md": "Trams in Lisbon" } });
    await api.addDocuments("/n", () => {});
    const chat = new ChatController(api);
    await chat.init();
    await chat.send("museums in Lisbon");
    chat.setSearch("lisbon", 0);
    await vi.waitFor(() => expect(chat.searchResults?.map((h) => h.kind)).toEqual(["message", "chunk"]));
    chat.setSearchKind("chunk");
    await vi.waitFor(() => expect(chat.searchResults?.map((h) => h.kind)).toEqual(["chunk"]));
  });

  it("renames and deletes sessions", async () => {
    const { api } = fakeApi();
    const chat = new ChatController(api);
    await chat.init();
    await chat.send("one");
    const id = chat.currentId!;
    await chat.rename(id, "Renamed");
    expect(chat.current?.title).toBe("Renamed");
    await chat.remove(id);
    expect(chat.sessions).toHaveLength(0);
    expect(chat.currentId).toBeNull();
  });

  it("turns 'ask about clipboard' into a quoted draft in a new chat", async () => {
    const { api } = fakeApi();
    const chat = new ChatController(api);
    await chat.init();
    await chat.handleAction({ kind: "askClipboard", text: "line 1\nline 2" });
    expect(chat.draft?.text).toBe("> line 1\n> line 2\n\n");
    await chat.handleAction({ kind: "askClipboard", text: "" });
    expect(chat.error?.kind).toBe("clipboard");
  });

  it("stops at a startup error", async () => {
    const { api } = fakeApi({ startupError: "not a Baton database" });
    const chat = new ChatController(api);
    await chat.init();
    expect(chat.status?.startupError?.message).toBe("not a Baton database");
    expect(chat.loading).toBe(false);
  });

  it("withdraws a partial answer when a fallback model restarts it, and keeps the steps", async () => {
    const step = { kind: "fallback", title: "remote failed; tiny answers instead", detail: "HTTP 500", ok: false, score: null, model: "tiny", round: 0 };
    const { api, sentModes } = fakeApi({
      tokens: ["fine"],
      before: [{ type: "token", text: "half an" }, { type: "restart", reason: "dropped" }, { type: "step", step }],
    });
    const chat = new ChatController(api);
    await chat.init();
    await chat.setMode("refine");
    await chat.send("hi");
    const answer = chat.messages.at(-1)!;
    expect(answer.content).toBe("fine");
    expect(chat.stepsById[answer.id]).toEqual([step]);
    expect(sentModes).toEqual(["refine"]);
  });

  it("rates answers and clears a rating with a second click", async () => {
    const { api, ratings } = fakeApi({ tokens: ["ok"] });
    const chat = new ChatController(api);
    await chat.init();
    await chat.send("hi");
    const id = chat.messages.at(-1)!.id;
    await chat.rate(id, 1);
    expect(chat.messages.at(-1)!.rating).toBe(1);
    expect(ratings.get(id)).toBe(1);
    await chat.rate(id, 1);
    expect(chat.messages.at(-1)!.rating).toBeNull();
    await chat.rate(id, -1);
    expect(ratings.get(id)).toBe(-1);
  });

  describe("voice", () => {
    async function voiceChat(opts: Parameters<typeof fakeApi>[0]) {
      const fake = fakeApi(opts);
      const chat = new ChatController(fake.api);
      await chat.init();
      await fake.api.onVoiceInput((e) => void chat.onVoiceInput(e));
      await fake.api.onReadAloud((e) => chat.onReadAloud(e));
      return { chat, ...fake };
    }

    it("shows the level and partial text, then sends what was heard", async () => {
      const { chat } = await voiceChat({
        tokens: ["Paris."],
        heard: [
          { kind: "level", level: 0.001 },
          { kind: "speechStarted" },
          { kind: "level", level: 0.2 },
          { kind: "partial", text: "What is the capital" },
          { kind: "final", text: " What is the capital of France? " },
        ],
      });
      await chat.toggleListening();
      await vi.waitFor(() => expect(chat.messages.map((m) => m.content)).toEqual(["What is the capital of France?", "Paris."]));
      expect(chat.listening).toBeNull();
      expect(chat.current?.title).toBe("What is the capital of France?");
    });

    it("keeps levels and partial text while listening", async () => {
      const { chat } = await voiceChat({});
      await chat.onVoiceInput({ kind: "starting", hold: true });
      await chat.onVoiceInput({ kind: "listening", device: "default" });
      for (let i = 0; i < 20; i++) await chat.onVoiceInput({ kind: "level", level: i / 20 });
      await chat.onVoiceInput({ kind: "speechStarted" });
      await chat.onVoiceInput({ kind: "partial", text: "remind me" });
      expect(chat.listening).toMatchObject({ phase: "speech", hold: true, partial: "remind me" });
      expect(chat.listening!.levels).toHaveLength(16);
      expect(chat.listening!.levels.at(-1)).toBe(0.95);
    });

    it("puts the text into the composer when asked to, and while an answer is written", async () => {
      const { chat } = await voiceChat({ heard: [{ kind: "final", text: "draft this" }] });
      await chat.setVoice({ afterSpeech: "insert" });
      await chat.toggleListening();
      await vi.waitFor(() => expect(chat.draft).toMatchObject({ text: "draft this", append: true }));
      expect(chat.messages).toHaveLength(0);
    });

    it("push to talk joins the utterances heard until the keys are released", async () => {
      const { chat, api } = await voiceChat({
        tokens: ["ok"],
        heard: [
          { kind: "final", text: "Please remind me" },
          { kind: "final", text: "to call the doctor." },
        ],
      });
      await api.startListening(true);
      await vi.waitFor(() => expect(chat.listening?.heard).toHaveLength(2));
      expect(chat.listening?.hold).toBe(true);
      await chat.stopListening();
      await vi.waitFor(() => expect(chat.messages[0]?.content).toBe("Please remind me to call the doctor."));
    });

    it("says so when nothing was heard, and shows a missing model as an error", async () => {
      const { chat } = await voiceChat({ heard: [] });
      await chat.toggleListening();
      await vi.waitFor(() => expect(chat.voiceNote).toContain("Nothing was heard"));
      expect(chat.messages).toHaveLength(0);

      const broken = await voiceChat({ listenError: { kind: "speechModel", message: "the speech model `whisper-base` is not installed" } });
      await broken.chat.toggleListening();
      expect(broken.chat.listening).toBeNull();
      expect(broken.chat.error).toEqual({ kind: "speechModel", message: "the speech model `whisper-base` is not installed" });
    });

    it("reads a message aloud and stops on a second click", async () => {
      const { chat, readAloud } = await voiceChat({ tokens: ["Hello there."] });
      await chat.send("hi");
      const answer = chat.messages.at(-1)!;
      await chat.toggleReading(answer);
      expect(readAloud).toEqual(["Hello there."]);
      expect(chat.reading).toEqual({ messageId: answer.id });
      await chat.toggleReading(answer);
      expect(chat.reading).toBeNull();
      chat.onReadAloud({ messageId: null, playing: true, voice: "piper", error: null });
      expect(chat.reading).toEqual({ messageId: null });
      chat.onReadAloud({ messageId: 999, playing: false, voice: null, error: null });
      expect(chat.reading).toEqual({ messageId: null });
      chat.onReadAloud({ messageId: null, playing: false, voice: null, error: null });
      expect(chat.reading).toBeNull();
    });
  });
});
