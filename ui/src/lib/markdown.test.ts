import { describe, expect, it } from "vitest";
import { codeOf, renderMarkdown } from "./markdown";

describe("renderMarkdown", () => {
  it("renders Markdown", () => {
    const html = renderMarkdown("# Title\n\nSome **bold** and `code`.\n\n- a\n- b");
    expect(html).toContain("<h1>Title</h1>");
    expect(html).toContain("<strong>bold</strong>");
    expect(html).toContain("<code>code</code>");
    expect(html).toContain("<li>a</li>");
  });

  it("highlights code blocks and gives them a copy button", () => {
    const html = renderMarkdown("```rust\nfn main() { let x = 1; }\n```");
    expect(html).toContain('class="code-lang">rust<');
    expect(html).toContain("data-copy-code");
    expect(html).toContain("hljs-keyword");
    const div = document.createElement("div");
    div.innerHTML = html;
    expect(codeOf(div.querySelector("[data-copy-code]")!)).toBe("fn main() { let x = 1; }");
  });

  it("closes a fence that is still streaming", () => {
    const html = renderMarkdown("Here:\n```python\nprint(1)");
    expect(html).toContain("<pre>");
    expect(html).toContain("print");
  });

  it("removes scripts, handlers, styles and live links", () => {
    const html = renderMarkdown(
      '<script>alert(1)</script><img src=x onerror="alert(2)"><p style="color:red" onclick="x()">hi</p>[a](javascript:alert(3))',
    );
    expect(html).not.toContain("<script");
    expect(html).not.toContain("onerror");
    expect(html).not.toContain("onclick");
    expect(html).not.toContain("style=");
    expect(html).not.toContain("href=");
  });
});
