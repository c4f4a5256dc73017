import "@fontsource/inter/400.css";
import "@fontsource/inter/500.css";
import "@fontsource/inter/600.css";
import "@fontsource/jetbrains-mono/400.css";
import "./app.css";
import { mount } from "svelte";
import App from "./App.svelte";
import SelectRegion from "./components/SelectRegion.svelte";
import { tauriApi } from "./lib/api";

const target = document.getElementById("app")!;
try {
  // The same bundle serves the chat window and the full-screen region selection window.
  if (new URLSearchParams(location.search).get("view") === "select") {
    mount(SelectRegion, { target, props: { api: tauriApi } });
  } else {
    mount(App, { target, props: { api: tauriApi } });
  }
} catch (e) {
  // Never a blank window: show what failed.
  target.textContent = `Baton's window failed to start: ${e instanceof Error ? e.message : String(e)}`;
}
