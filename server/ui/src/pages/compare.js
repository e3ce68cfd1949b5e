// Compare runs: params and final metrics side by side (rows that differ are marked),
// and each metric's history overlaid for all runs.
import { get } from "../api.js";
import { add, empty, h, link, num, seg, short } from "../dom.js";
import { lineChart } from "../charts.js";
import { histories } from "./run.js";

const MAX_CHARTS = 12;

function sideBySide(title, id, runs, keys, cell) {
  const rows = keys.map((k) => {
    const values = runs.map((r) => cell(r, k));
    const differs = new Set(values).size > 1;
    return h("tr", { class: differs ? "diff" : null, "data-key": k },
      h("th", { scope: "row" }, k, differs ? h("span", { class: "diff-mark", title: "values differ" }, " ≠", h("span", { class: "sr-only" }, " (differs)")) : null),
      values.map((v) => h("td", {}, v)));
  });
  return h("section", { "aria-labelledby": id },
    h("h2", { id }, title),
    keys.length ? h("div", { class: "scroll" }, h("table", { id: `${id}-table` },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Key"),
        runs.map((r) => h("th", { scope: "col" }, link(`/runs/${seg(r.id)}`, r.name ?? short(r.id, 8)))))),
      h("tbody", {}, rows))) : empty(`No ${title.toLowerCase()}.`));
}

export async function comparePage(main, _params, q) {
  const ids = (q.get("runs") ?? "").split(",").filter(Boolean);
  add(main, h("h1", {}, "Compare runs"));
  if (ids.length < 2) {
    add(main, empty("Pick two or more runs on the runs page."), link("/runs", "Back to runs"));
    return;
  }
  const runs = await Promise.all(ids.map((id) => get(`/runs/${seg(id)}`)));
  const union = (field) => [...new Set(runs.flatMap((r) => Object.keys(r[field])))].sort();
  const params = union("params");
  const metrics = union("metrics");
  add(main, 
    h("p", {}, "Rows marked ≠ differ between the runs."),
    sideBySide("Parameters", "cmp-params", runs, params, (r, k) => r.params[k] ?? "–"),
    sideBySide("Metrics", "cmp-metrics", runs, metrics, (r, k) => num(r.metrics[k])),
  );
  const series = await Promise.all(runs.map((r) => histories(r.id, Object.keys(r.metrics))));
  // Overlaid where at least two runs have the metric and one has a history to draw;
  // single values are compared in the table above.
  const shared = metrics
    .filter((k) => series.filter((s) => s[k]).length > 1 && series.some((s) => s[k]?.length > 1))
    .slice(0, MAX_CHARTS);
  add(main, h("section", { "aria-labelledby": "cmp-charts" },
    h("h2", { id: "cmp-charts" }, "Metric histories"),
    shared.length ? null : empty("No metric with a history in two of these runs."),
    h("div", { class: "charts" }, shared.map((k) => lineChart(k, runs
      .map((r, i) => ({ label: r.name ?? short(r.id, 8), points: series[i][k] ?? [] }))
      .filter((s) => s.points.length))))));
}
