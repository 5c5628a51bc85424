/** Escaping for the two report formats: every string from the comparison is user input. */

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for HTML/SVG text nodes and quoted attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch]!);
}

/**
 * Escapes text for a Markdown table cell or inline text: backslashes, code/emphasis/link/table
 * syntax, and raw HTML (renderers such as GitHub would otherwise interpret `<script>` or an
 * entity); newlines collapse to spaces so a cell cannot break its table. Parentheses stay plain:
 * with `[`/`]` escaped they cannot form a link, and the raw text stays readable when pasted.
 */
export function escapeMarkdown(s: string): string {
  return s
    .replace(/[\r\n]+/g, " ")
    .replace(/[\\`*_[\]|~]/g, (ch) => `\\${ch}`)
    .replace(/&(?=#?[a-zA-Z0-9]+;)/g, "&amp;")
    .replace(/</g, "&lt;");
}
