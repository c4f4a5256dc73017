// Markdown to safe HTML: marked for the syntax, highlight.js for code, DOMPurify so a
// model's answer can never inject script or style into the window.
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/common";
import { Marked, type Tokens } from "marked";

const marked = new Marked({ gfm: true, breaks: false });

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

marked.use({
  renderer: {
    code({ text, lang }: Tokens.Code): string {
      const language = (lang ?? "").trim().split(/\s+/)[0].toLowerCase();
      let body: string;
      let label = language;
      if (language && hljs.getLanguage(language)) {
        body = hljs.highlight(text, { language, ignoreIllegals: true }).value;
      } else if (text.length < 20_000) {
        const auto = hljs.highlightAuto(text);
        body = auto.value;
        label = language || auto.language || "text";
      } else {
        body = escapeHtml(text);
      }
      return (
        `<div class="code-block"><div class="code-head"><span class="code-lang">${escapeHtml(label || "text")}</span>` +
        `<button type="button" class="copy-code" data-copy-code>Copy</button></div>` +
        `<pre><code class="hljs">${body}</code></pre></div>`
      );
    },
    link({ href, text }: Tokens.Link): string {
      // Links open nowhere inside the app window; show where they point.
      return `<span class="link" title="${escapeHtml(href)}">${escapeHtml(text)}</span>`;
    },
    image({ text }: Tokens.Image): string {
      return `<span class="image-alt">[image: ${escapeHtml(text)}]</span>`;
    },
  },
});

/** Renders Markdown (possibly incomplete while streaming) to sanitised HTML. */
export function renderMarkdown(source: string): string {
  let text = source;
  // An unterminated fence while streaming: close it so the code renders as code.
  const fences = text.match(/^(```|~~~)/gm);
  if (fences && fences.length % 2 === 1) text += "\n```";
  const html = marked.parse(text, { async: false });
  return DOMPurify.sanitize(html, {
    ADD_ATTR: ["data-copy-code"],
    FORBID_TAGS: ["style", "form", "input", "iframe"],
    FORBID_ATTR: ["style"],
  });
}

/** The source text of the code block that holds `button`. */
export function codeOf(button: Element): string {
  return button.closest(".code-block")?.querySelector("code")?.textContent ?? "";
}
