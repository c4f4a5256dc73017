// The chat model choice, shared by the first-start dialog and Settings → Models: which
// models fit this machine (the runtime's assessment), downloads with progress and cancel,
// and the choice itself (the runtime stores it).
import { errorMessage, type BatonApi, type FetchProgressInfo, type ModelChoice } from "./api";
import type { ChatController } from "./chat.svelte";

export class ModelChoiceController {
  choice = $state<ModelChoice | null>(null);
  /** Reading the choice failed. */
  error = $state<string | null>(null);
  /** Whether the first-start dialog is open. */
  dialogOpen = $state(false);
  /** Downloads in progress, by model. */
  fetching = $state<Record<string, FetchProgressInfo | "starting">>({});
  /** The model being made the default. */
  choosing = $state<string | null>(null);
  /** Why choosing (or downloading) a model failed, by model. */
  errors = $state<Record<string, string>>({});
  /** Downloads the person cancelled (their message is a note, not an error). */
  cancelled = $state<Record<string, true>>({});

  constructor(
    private readonly api: BatonApi,
    private readonly chat: ChatController,
  ) {}

  /** Reads the choice; `ask` opens the dialog when the runtime says to. Never throws. */
  async load(ask = false): Promise<void> {
    try {
      this.choice = await this.api.modelChoice();
      this.error = null;
      if (ask && this.choice.ask) this.dialogOpen = true;
    } catch (e) {
      this.error = errorMessage(e);
    }
  }

  /** Downloads `name` when it is missing, then makes it the default. */
  async choose(name: string): Promise<boolean> {
    const { [name]: _gone, ...rest } = this.errors;
    this.errors = rest;
    const { [name]: _was, ...still } = this.cancelled;
    this.cancelled = still;
    const fit = this.choice?.models.find((m) => m.name === name);
    try {
      if (fit && !fit.installed) {
        this.fetching = { ...this.fetching, [name]: "starting" };
        try {
          await this.api.fetchModel(name, (p) => (this.fetching = { ...this.fetching, [name]: p }));
        } finally {
          const { [name]: _done, ...others } = this.fetching;
          this.fetching = others;
        }
        await this.chat.refreshModels().catch(() => {});
      }
      if (this.choice?.pinned) {
        // Downloaded; the config file decides the default.
        await this.load();
        return true;
      }
      this.choosing = name;
      this.choice = await this.api.chooseModel(name);
      this.dialogOpen = false;
      await this.chat.refreshStatus().catch(() => {});
      return true;
    } catch (e) {
      this.errors = { ...this.errors, [name]: errorMessage(e) };
      await this.load();
      return false;
    } finally {
      this.choosing = null;
    }
  }

  /** Stops a download started here (the partial file is deleted). */
  async cancel(name: string): Promise<void> {
    this.cancelled = { ...this.cancelled, [name]: true };
    await this.api.cancelFetch(name);
  }

  /** "Decide later": closes the dialog; it is not shown again. */
  async later(): Promise<void> {
    this.dialogOpen = false;
    try {
      await this.api.deferModelChoice();
    } catch (e) {
      this.error = errorMessage(e);
    }
  }

  /** Whether anything is downloading or being chosen. */
  get busy(): boolean {
    return this.choosing !== null || Object.keys(this.fetching).length > 0;
  }
}
