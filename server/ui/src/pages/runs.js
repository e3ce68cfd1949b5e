// Experiments and runs: one page of runs at a time, filtered, sorted and counted by the
// server (GET /runs with experiment, status, q, sort, order, limit, offset), so a workspace
// of 10,000 runs opens as fast as one of ten. The address keeps the state: a reload or a
// shared link shows the same page.
import { ApiError, get, getRaw, query } from "../api.js";
import { add, badge, duration, empty, fill, h, link, num, seg, short, when } from "../dom.js";
import { navigate } from "../router.js";

const MAX_KEYS = 8; // param and metric columns shown; the run page has them all
const PAGE_SIZES = [25, 50, 100, 200];
const SEARCH_DELAY_MS = 300;
// Columns the server sorts by; the others (experiment, commit) are not sortable.
const SORTABLE = new Set(["name", "status", "start_time", "duration"]);

function keysOf(runs, field) {
  const counts = new Map();
  for (const r of runs) for (const k of Object.keys(r[field])) counts.set(k, (counts.get(k) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, MAX_KEYS).map(([k]) => k);
}

/** The page's state from the address (unknown values fall back to the defaults). */
function stateFrom(q) {
  const size = Number(q.get("limit"));
  return {
    experiment: q.get("experiment") ?? "",
    status: q.get("status") ?? "",
    text: q.get("q") ?? "",
    sort: q.get("sort") || "start_time",
    order: q.get("order") === "asc" ? "asc" : "desc",
    limit: PAGE_SIZES.includes(size) ? size : 50,
    offset: Math.max(0, Math.floor(Number(q.get("offset")) || 0)),
  };
}

/** The sort field the server knows for a column key ("p:lr" -> "params.lr"). */
const sortField = (key) => (key.startsWith("p:") ? `params.${key.slice(2)}` : key.startsWith("m:") ? `metrics.${key.slice(2)}` : key);

export async function runsPage(main, _params, q) {
  const state = { ...stateFrom(q), selected: new Set(), runs: [], total: 0 };
  let asked = 0; // answers of load() are drawn only when they are the newest one asked for
  const body = h("div", { id: "runs-body" });
  const count = h("p", { class: "count", id: "runs-count", "aria-live": "polite" });
  const problem = h("div", { id: "search-problem" });
  const compare = h("button", { type: "button", id: "compare", disabled: true, onclick: () =>
    navigate(`/compare${query({ runs: [...state.selected].join(",") })}`) }, "Compare selected");
  const prev = h("button", { type: "button", id: "prev", onclick: () => turn(-1) }, "Previous");
  const next = h("button", { type: "button", id: "next", onclick: () => turn(1) }, "Next");

  const select = (id, label, options, value, onchange) => [
    h("label", { for: id }, label),
    h("select", { id, onchange: (e) => onchange(e.target.value) },
      options.map(([v, t]) => h("option", { value: v, selected: v === String(value) }, t))),
  ];
  let typing = null;
  const search = h("input", { id: "filter", type: "search", value: state.text, size: 40,
    placeholder: "name or id, metrics.acc > 0.9, params.lr = 0.01, tags.team = vision",
    "aria-describedby": "filter-help",
    oninput: (e) => {
      clearTimeout(typing);
      typing = setTimeout(() => change({ text: e.target.value.trim() }), SEARCH_DELAY_MS);
    },
    onkeydown: (e) => {
      if (e.key !== "Enter") return;
      clearTimeout(typing);
      change({ text: e.target.value.trim() });
    } });
  // The experiments (for the menu) and the first page in one round trip, not two.
  const [experiments] = await Promise.all([get("/experiments"), load()]);
  add(main,
    h("h1", {}, "Runs"),
    h("div", { class: "toolbar", role: "search" },
      select("experiment", "Experiment", [["", "all"], ...experiments.map((e) => [e.name, `${e.name} (${e.runs})`])],
        state.experiment, (v) => change({ experiment: v })),
      select("status", "Status", [["", "any"], ...["running", "completed", "failed", "killed"].map((s) => [s, s])],
        state.status, (v) => change({ status: v })),
      h("label", { for: "filter" }, "Search"),
      search,
      compare),
    h("p", { id: "filter-help", class: "help" },
      "Words match a run's name or id; metrics compare their last value (= != < <= > >=); params and tags compare with = or !=."),
    problem,
    count,
    body,
    h("nav", { class: "pager", "aria-label": "Pages of runs" },
      prev, next,
      select("page-size", "Runs per page", PAGE_SIZES.map((n) => [String(n), String(n)]), state.limit,
        (v) => change({ limit: Number(v) }))),
  );

  /** The address of the current state (defaults left out, so plain /ui/runs stays plain). */
  function address() {
    const { experiment, status, text, sort, order, limit, offset } = state;
    return `/runs${query({ experiment, status, q: text, sort: sort === "start_time" ? "" : sort,
      order: order === "desc" ? "" : order, limit: limit === 50 ? "" : limit, offset: offset || "" })}`;
  }

  function remember(push) {
    const url = "/ui" + address();
    if (url === location.pathname + location.search) return;
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
  }

  // A new filter or order starts again at the first page.
  function change(values) {
    Object.assign(state, values, { offset: 0 });
    remember(false);
    load();
  }

  function turn(direction) {
    state.offset = Math.max(0, state.offset + direction * state.limit);
    remember(true);
    load();
  }

  function sortBy(key) {
    const field = sortField(key);
    // A new column starts with the order most people want first: names A-Z, numbers high-low.
    const order = state.sort === field ? (state.order === "asc" ? "desc" : "asc") : field === "name" ? "asc" : "desc";
    change({ sort: field, order });
  }

  function draw() {
    const first = state.total ? state.offset + 1 : 0;
    const last = state.offset + state.runs.length;
    count.textContent = `Runs ${first}–${last} of ${state.total.toLocaleString()}`;
    prev.disabled = state.offset === 0;
    next.disabled = last >= state.total;
    if (!state.runs.length) {
      const filtered = state.experiment || state.status || state.text || state.offset;
      return fill(body, empty(filtered ? "No runs match." : "No runs yet: `amlpkg run` or `amlpkg quickstart` makes one."));
    }
    const params = keysOf(state.runs, "params");
    const metrics = keysOf(state.runs, "metrics");
    const columns = [["name", "Run"], ["experiment", "Experiment"], ["status", "Status"],
      ["start_time", "Started"], ["duration", "Duration"], ["git_commit", "Commit"],
      ...params.map((p) => [`p:${p}`, p]), ...metrics.map((m) => [`m:${m}`, m])];
    const sortable = (k) => SORTABLE.has(k) || k.startsWith("p:") || k.startsWith("m:");
    const head = h("tr", {}, h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Select")),
      columns.map(([k, label]) => h("th", {
        scope: "col",
        class: k.startsWith("p:") ? "param" : k.startsWith("m:") ? "metric" : null,
        "aria-sort": state.sort === sortField(k) ? (state.order === "asc" ? "ascending" : "descending") : null,
      }, sortable(k) ? h("button", { type: "button", class: "sort", onclick: () => sortBy(k) }, label,
        state.sort === sortField(k) ? h("span", { "aria-hidden": "true" }, state.order === "asc" ? " ▲" : " ▼") : null) : label)));
    const rows = state.runs.map((r) => h("tr", { "data-run": r.id },
      h("td", {}, h("input", { type: "checkbox", "aria-label": `select run ${r.name ?? r.id}`,
        checked: state.selected.has(r.id), onchange: (e) => {
          if (e.target.checked) state.selected.add(r.id); else state.selected.delete(r.id);
          compare.disabled = state.selected.size < 2;
        } })),
      h("td", {}, link(`/runs/${seg(r.id)}`, r.name ?? short(r.id, 8))),
      h("td", {}, r.experiment),
      h("td", {}, badge(r.status)),
      h("td", {}, when(r.start_time)),
      h("td", { class: "num" }, duration(r.start_time, r.end_time)),
      h("td", { class: "mono" }, r.git_commit ? short(r.git_commit, 8) + (r.git_dirty ? "*" : "") : "–"),
      params.map((p) => h("td", {}, r.params[p] ?? "")),
      metrics.map((m) => h("td", { class: "num" }, m in r.metrics ? num(r.metrics[m]) : "")),
    ));
    fill(body, h("div", { class: "scroll" }, h("table", { id: "runs-table", "data-total": state.total },
      h("caption", { class: "sr-only" }, "Runs, sorted by the server; sort by a column with its button"),
      h("thead", {}, head), h("tbody", {}, rows))));
  }

  // Only the newest answer is drawn: a slow one for an older search must not win.
  async function load() {
    const mine = ++asked;
    const { experiment, status, text, sort, order, limit, offset } = state;
    try {
      const answer = await getRaw(`/runs${query({ experiment, status, q: text, sort, order, limit, offset })}`);
      const runs = await answer.json();
      if (mine !== asked) return;
      state.runs = runs;
      state.total = Number(answer.headers.get("X-Total-Count") ?? runs.length);
      fill(problem);
    } catch (error) {
      if (mine !== asked) return;
      // A search the server cannot read is a message under the box, not a broken page.
      if (!(error instanceof ApiError) || error.status !== 400) throw error;
      state.runs = [];
      state.total = 0;
      fill(problem, h("p", { class: "error", role: "alert" }, error.message,
        error.hint ? h("span", { class: "reason" }, ` (${error.hint})`) : null));
    }
    draw();
  }
  // Runs in progress change their metrics and status: refresh while any is on the page.
  const timer = setInterval(() => {
    if (state.runs.some((r) => r.status === "running")) load();
  }, 3000);
  return () => {
    clearInterval(timer);
    clearTimeout(typing);
  };
}
