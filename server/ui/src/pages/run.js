// One run: facts, params, metric charts over steps (live while it runs), artifacts with a
// preview, logs, environment, and the ONNX model it exported with its parity check.
import { ApiError, get, getRaw } from "../api.js";
import { add, badge, bytes, duration, empty, facts, fill, h, link, num, seg, short, table, when } from "../dom.js";
import { lineChart } from "../charts.js";

const PREVIEW_BYTES = 256 * 1024;
// A chart is a few hundred pixels wide whatever the run logged: the server thins a long
// history to each stretch's lowest and highest value (spikes stay), at most this many points.
const MAX_POINTS = 1000;
const TEXT = /\.(txt|log|json|ya?ml|md|csv|tsv|py|cfg|ini|toml)$/i;
const IMAGE = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif" };

/** Metric histories of a run as chart series. */
export async function histories(runId, keys) {
  const thin = `max_points=${MAX_POINTS}&downsample=minmax`;
  const found = await Promise.all(keys.map((k) => get(`/runs/${seg(runId)}/metrics/${seg(k)}?${thin}`)));
  return Object.fromEntries(found.map((m) => [m.key, m.points.map((p) => [p.step, p.value])]));
}

async function text(path) {
  try {
    return await (await getRaw(path)).text();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

function preview(runId, artifact, out) {
  return async () => {
    const ext = artifact.path.split(".").pop().toLowerCase();
    const answer = await getRaw(`/runs/${seg(runId)}/artifacts/${artifact.path.split("/").map(seg).join("/")}`);
    if (IMAGE[ext]) {
      // A blob typed by us: the server sends octet-stream, and SVG (which can script) is not shown.
      const blob = new Blob([await answer.arrayBuffer()], { type: IMAGE[ext] });
      fill(out, h("img", { src: URL.createObjectURL(blob), alt: `artifact ${artifact.path}`, class: "preview" }));
    } else {
      fill(out, h("pre", { class: "preview", tabindex: 0 }, await answer.text()));
    }
    out.previousElementSibling?.focus?.();
  };
}

function artifactsSection(runId, artifacts) {
  if (!artifacts.length) return empty("No artifacts.");
  const out = h("div", { class: "preview-box", "aria-live": "polite" });
  const rows = artifacts.map((a) => {
    const ext = a.path.split(".").pop().toLowerCase();
    const can = a.size <= PREVIEW_BYTES && (TEXT.test(a.path) || IMAGE[ext]);
    return h("tr", {},
      h("td", { class: "mono" }, a.path),
      h("td", { class: "num" }, bytes(a.size)),
      h("td", { class: "mono" }, short(a.sha256)),
      h("td", {}, can ? h("button", { type: "button", class: "link", onclick: preview(runId, a, out) },
        `Preview ${a.path}`) : ""));
  });
  return [table(null, ["Path", "Size", "sha256", ""], rows), out];
}

function modelSection(run, lineage) {
  const versions = lineage.downstream.filter((e) => e.dst_kind === "model_version" && e.src_kind === "run");
  const parityTags = Object.entries(run.tags).filter(([k]) => k.startsWith("onnx_"));
  const parityMetrics = Object.entries(run.metrics).filter(([k]) => k.includes("parity"));
  if (!versions.length && !parityTags.length) return empty("This run exported no ONNX model.");
  const parity = run.tags.onnx_parity;
  return [
    parity ? h("p", {}, "Parity of the ONNX export against the original: ", badge(parity, parity === "passed" ? "completed" : "failed")) : null,
    facts([...parityTags, ...parityMetrics.map(([k, v]) => [k, num(v)])]),
    versions.length ? h("p", {}, "Registered as ", versions.map((e, i) => {
      const [name, version] = e.dst_id.split(":");
      return [i ? ", " : "", link(`/models/${seg(name)}/${seg(version)}`, e.dst_id)];
    })) : null,
  ];
}

export async function runPage(main, { id }) {
  const run0 = await get(`/runs/${seg(id)}`);
  // The charts' series are asked for at once, beside the rest, not after it.
  const firstSeries = histories(run0.id, Object.keys(run0.metrics).sort());
  firstSeries.catch(() => {}); // a failure is reported where it is awaited, in draw()
  const header = h("div");
  const charts = h("div", { class: "charts", id: "charts" });
  const metricsBox = h("div");
  // The other sections fill in as their answers come: the charts do not wait for them.
  const [modelBox, artifactsBox, logsBox, envBox] = [0, 1, 2, 3].map(() => h("div", {}, empty("Loading…")));
  add(main,
    header,
    h("section", { "aria-labelledby": "h-metrics" }, h("h2", { id: "h-metrics" }, "Metrics"), metricsBox, charts),
    h("section", { "aria-labelledby": "h-params" }, h("h2", { id: "h-params" }, "Parameters"),
      Object.keys(run0.params).length
        ? table(null, ["Param", "Value"], Object.entries(run0.params).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v))))
        : empty("No params.")),
    h("section", { "aria-labelledby": "h-model" }, h("h2", { id: "h-model" }, "Exported model"), modelBox),
    h("section", { "aria-labelledby": "h-artifacts" }, h("h2", { id: "h-artifacts" }, "Artifacts"), artifactsBox),
    h("section", { "aria-labelledby": "h-logs" }, h("h2", { id: "h-logs" }, "Logs"), logsBox),
    h("section", { "aria-labelledby": "h-env" }, h("h2", { id: "h-env" }, "Environment"), envBox),
  );
  const rest = Promise.all([
    get(`/runs/${seg(run0.id)}/artifacts`),
    get(`/lineage/run/${seg(run0.id)}`),
    text(`/runs/${seg(run0.id)}/logs`),
    text(`/runs/${seg(run0.id)}/environment`),
  ]).then(([artifacts, lineage, logs, environment]) => {
    fill(modelBox, modelSection(run0, lineage));
    fill(artifactsBox, artifactsSection(run0.id, artifacts));
    fill(logsBox, logs === null ? empty("No captured output (runs started with `amlpkg run` have it).") : h("pre", { class: "log", tabindex: 0 }, logs));
    fill(envBox, environment === null ? empty("No environment recorded.") : h("pre", { class: "log", tabindex: 0 }, environment));
  });

  async function draw(run, pending = null) {
    fill(header,
      h("h1", {}, "Run ", run.name ?? short(run.id, 8)),
      h("p", {}, badge(run.status), " ", link(`/lineage/run/${seg(run.id)}`, "Lineage of this run"),
        " · ", link(`/runs?experiment=${seg(run.experiment)}`, `experiment ${run.experiment}`)),
      facts([["Id", h("span", { class: "mono" }, run.id)], ["Started", when(run.start_time)],
        ["Duration", duration(run.start_time, run.end_time)], ["Git commit",
          run.git_commit ? `${run.git_commit}${run.git_dirty ? " (dirty)" : ""}` : null],
        ["Command", run.command], ["User", run.user], ["Host", run.host], ["Python", run.python_version],
        ["Tags", Object.entries(run.tags).map(([k, v]) => h("span", { class: "tag" }, `${k}=${v}`))]]));
    const keys = Object.keys(run.metrics).sort();
    fill(metricsBox, keys.length
      ? table(null, ["Metric", "Last value"], keys.map((k) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, num(run.metrics[k])))))
      : empty("No metrics."));
    const series = await (pending ?? histories(run.id, keys));
    // One chart per metric with more than one point; single values are in the table above.
    fill(charts, keys.filter((k) => series[k].length > 1).map((k) => lineChart(k, [{ label: k, points: series[k] }])));
  }
  await Promise.all([draw(run0, firstSeries), rest]);
  if (run0.status !== "running") return undefined;
  // A person watching a run in progress sees new points without reloading.
  let busy = false;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      const run = await get(`/runs/${seg(run0.id)}`);
      await draw(run);
      if (run.status !== "running") clearInterval(timer);
    } finally {
      busy = false;
    }
  }, 2000);
  return () => clearInterval(timer);
}
