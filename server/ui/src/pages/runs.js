// Experiments and runs: a table filtered on the server (experiment, status) and in the
// page (free text over name, id, params and tags), sortable by any column.
import { get, query } from "../api.js";
import { add, badge, duration, empty, fill, h, link, num, seg, short, when } from "../dom.js";
import { navigate } from "../router.js";

const MAX_KEYS = 8; // param and metric columns shown; the run page has them all

function keysOf(runs, field) {
  const counts = new Map();
  for (const r of runs) for (const k of Object.keys(r[field])) counts.set(k, (counts.get(k) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, MAX_KEYS).map(([k]) => k);
}

function matches(run, text) {
  if (!text) return true;
  const hay = [run.id, run.name, run.experiment, run.status, run.git_commit,
    ...Object.entries(run.params).flat(), ...Object.entries(run.tags).flat()]
    .join(" ").toLowerCase();
  return text.toLowerCase().split(/\s+/).every((word) => hay.includes(word));
}

export async function runsPage(main, _params, q) {
  const state = {
    experiment: q.get("experiment") ?? "",
    status: q.get("status") ?? "",
    text: q.get("q") ?? "",
    sort: { key: "start_time", dir: -1 },
    selected: new Set(),
    runs: [],
  };
  const experiments = await get("/experiments");
  const body = h("div", { id: "runs-body" });
  const count = h("p", { class: "count", "aria-live": "polite" });
  const compare = h("button", { type: "button", id: "compare", disabled: true, onclick: () =>
    navigate(`/compare${query({ runs: [...state.selected].join(",") })}`) }, "Compare selected");

  const select = (id, label, options, value, onchange) => [
    h("label", { for: id }, label),
    h("select", { id, onchange: (e) => onchange(e.target.value) },
      options.map(([v, t]) => h("option", { value: v, selected: v === value }, t))),
  ];
  add(main, 
    h("h1", {}, "Runs"),
    h("div", { class: "toolbar", role: "search" },
      select("experiment", "Experiment", [["", "all"], ...experiments.map((e) => [e.name, `${e.name} (${e.runs})`])],
        state.experiment, (v) => { state.experiment = v; load(); }),
      select("status", "Status", [["", "any"], ...["running", "completed", "failed", "killed"].map((s) => [s, s])],
        state.status, (v) => { state.status = v; load(); }),
      h("label", { for: "filter" }, "Filter"),
      h("input", { id: "filter", type: "search", value: state.text, placeholder: "name, param, tag…",
        oninput: (e) => { state.text = e.target.value; draw(); } }),
      compare),
    count,
    body,
  );

  function sortBy(key) {
    state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
    draw();
  }

  function value(run, key) {
    if (key.startsWith("p:")) return run.params[key.slice(2)];
    if (key.startsWith("m:")) return run.metrics[key.slice(2)];
    if (key === "duration") return (run.end_time ?? Date.now() / 1000) - run.start_time;
    return run[key];
  }

  function draw() {
    const runs = state.runs.filter((r) => matches(r, state.text));
    const { key, dir } = state.sort;
    runs.sort((a, b) => {
      const x = value(a, key);
      const y = value(b, key);
      if (x === y) return 0;
      if (x === undefined || x === null) return 1;
      if (y === undefined || y === null) return -1;
      const nx = Number(x);
      const ny = Number(y);
      return dir * (Number.isNaN(nx) || Number.isNaN(ny) ? String(x).localeCompare(String(y)) : nx - ny);
    });
    count.textContent = `${runs.length} of ${state.runs.length} runs`;
    const params = keysOf(state.runs, "params");
    const metrics = keysOf(state.runs, "metrics");
    const columns = [["name", "Run"], ["experiment", "Experiment"], ["status", "Status"],
      ["start_time", "Started"], ["duration", "Duration"], ["git_commit", "Commit"],
      ...params.map((p) => [`p:${p}`, p]), ...metrics.map((m) => [`m:${m}`, m])];
    if (!state.runs.length) return fill(body, empty("No runs yet: `amlpkg run` or `amlpkg quickstart` makes one."));
    const head = h("tr", {}, h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Select")),
      columns.map(([k, label]) => h("th", {
        scope: "col",
        class: k.startsWith("p:") ? "param" : k.startsWith("m:") ? "metric" : null,
        "aria-sort": key === k ? (dir > 0 ? "ascending" : "descending") : null,
      }, h("button", { type: "button", class: "sort", onclick: () => sortBy(k) }, label))));
    const rows = runs.map((r) => h("tr", { "data-run": r.id },
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
    fill(body, h("div", { class: "scroll" }, h("table", { id: "runs-table" },
      h("caption", { class: "sr-only" }, "Runs, sortable by any column"),
      h("thead", {}, head), h("tbody", {}, rows))));
  }

  async function load() {
    state.runs = await get(`/runs${query({ experiment: state.experiment, status: state.status, limit: 1000 })}`);
    draw();
  }
  await load();
  // Runs in progress change their metrics and status: refresh while any is running.
  const timer = setInterval(() => {
    if (state.runs.some((r) => r.status === "running")) load();
  }, 3000);
  return () => clearInterval(timer);
}
