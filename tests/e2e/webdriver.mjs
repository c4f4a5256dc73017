// A small W3C WebDriver client (Node 20's fetch, no dependencies) for tauri-driver.
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

export class WebDriver {
  constructor(base = `http://127.0.0.1:${process.env.E2E_PORT ?? 4444}`) {
    this.base = base;
    this.session = null;
  }

  async cmd(method, path, body) {
    const url = `${this.base}${path}`;
    const res = await fetch(url, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) {
      const v = json.value ?? {};
      const err = new Error(`${method} ${path}: ${v.error ?? res.status} ${v.message ?? ""}`);
      err.code = v.error;
      throw err;
    }
    return json.value;
  }

  s(path) {
    return `/session/${this.session}${path}`;
  }

  async start(application, args = []) {
    const value = await this.cmd("POST", "/session", {
      capabilities: { alwaysMatch: { "tauri:options": { application, args } } },
    });
    this.session = value.sessionId;
    return this;
  }

  async quit() {
    if (!this.session) return;
    const id = this.session;
    this.session = null;
    await this.cmd("DELETE", `/session/${id}`).catch(() => {});
  }

  async title() {
    return this.cmd("GET", this.s("/title"));
  }

  async findAll(css) {
    const list = await this.cmd("POST", this.s("/elements"), { using: "css selector", value: css });
    return list.map((e) => e[ELEMENT]);
  }

  async find(css) {
    const v = await this.cmd("POST", this.s("/element"), { using: "css selector", value: css });
    return v[ELEMENT];
  }

  /** The element's rendered text (WebKitWebDriver's "get element text" can answer ""). */
  async text(el) {
    return this.exec("return arguments[0].innerText;", [{ [ELEMENT]: el }]);
  }

  async click(el) {
    return this.cmd("POST", this.s(`/element/${el}/click`), {});
  }

  async type(el, text) {
    return this.cmd("POST", this.s(`/element/${el}/value`), { text });
  }

  async exec(script, args = []) {
    return this.cmd("POST", this.s("/execute/sync"), { script, args });
  }

  /** Polls `fn` until it returns a truthy value (errors count as "not yet"). */
  async waitFor(what, fn, timeoutMs = 20_000, intervalMs = 100) {
    const until = Date.now() + timeoutMs;
    let last;
    for (;;) {
      try {
        const v = await fn();
        if (v) return v;
      } catch (e) {
        last = e;
      }
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }

  /** Runs an async script: it resolves by calling the last argument (its callback). */
  async execAsync(script, args = []) {
    return this.cmd("POST", this.s("/execute/async"), { script, args });
  }

  /**
   * Waits until the page is still: no finite CSS animation or transition running, then two
   * animation frames painted (for screenshots that show the finished state).
   */
  async settled(timeoutMs = 10_000) {
    await this.waitFor(
      "animations and transitions to finish",
      () =>
        this.exec(
          "return document.getAnimations().every((a) => a.playState !== 'running' || a.effect?.getTiming().iterations === Infinity)",
        ),
      timeoutMs,
      50,
    );
    await this.execAsync("const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));");
  }

  async waitForElement(css, timeoutMs) {
    return this.waitFor(`element ${css}`, async () => (await this.findAll(css))[0], timeoutMs);
  }

  async count(css) {
    return (await this.findAll(css)).length;
  }
}

/** WebDriver key codes. */
export const Keys = { ENTER: "\uE007", SHIFT: "\uE008", CONTROL: "\uE009" };
