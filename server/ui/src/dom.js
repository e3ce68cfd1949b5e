// DOM helpers. Every value from the API is user-controlled (run names, tags, params):
// it only ever reaches the page as text nodes or attribute values, never as markup.

/** Make an element: h("a", { href: "/ui/runs", class: "x" }, "text", child, [more]). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Add children to an element (null, undefined and false are skipped, arrays flattened). */
export function add(el, ...children) {
  append(el, children);
  return el;
}

/** Replace an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link inside the app (the router intercepts clicks on it). */
export function link(path, text, attrs = {}) {
  return h("a", { href: "/ui" + path, ...attrs }, text);
}

/** A path segment, escaped for use in a URL. */
export const seg = (text) => encodeURIComponent(String(text));

export function when(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return new Date(seconds * 1000).toLocaleString();
}

export function ago(seconds) {
  if (!seconds) return "never";
  const s = Math.max(0, Date.now() / 1000 - seconds);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function duration(start, end) {
  if (!start) return "–";
  const s = (end ?? Date.now() / 1000) - start;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export function num(value, digits = 4) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(3);
  return String(Number(value.toPrecision(digits))); // 0.004200 reads as 0.0042
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export const short = (digest, n = 12) => (digest ? String(digest).replace(/^sha256:/, "").slice(0, n) : "–");

/** A table from column headers and rows of cells (strings or nodes). */
export function table(caption, headers, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows),
  );
}

/** A definition list from [label, value] pairs. */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "–")]),
  );
}

export const badge = (text, kind = text) => h("span", { class: `badge badge-${kind}` }, text);

export const empty = (text) => h("p", { class: "empty" }, text);
