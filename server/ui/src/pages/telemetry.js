// Telemetry of one deployment or device: totals and charts over time (req/s, latency, errors).
import { get, query } from "../api.js";
import { empty, facts, h, num } from "../dom.js";
import { lineChart } from "../charts.js";

export function summaryFacts(s) {
  if (!s) return empty("No telemetry received.");
  return facts([["Messages", s.messages], ["Requests", s.requests], ["Errors", `${s.errors} (${num(s.error_rate * 100, 3)} %)`],
    ["Throughput", s.throughput_rps === null ? "–" : `${num(s.throughput_rps, 3)} req/s`],
    ["Latency avg", s.latency_avg_ms === null ? "–" : `${num(s.latency_avg_ms, 3)} ms`],
    ["Latency p95 (worst window)", s.latency_p95_ms === null ? "–" : `${num(s.latency_p95_ms, 3)} ms`],
    ["Models reported", s.models.join(", ") || "–"]]);
}

/** Charts of the newest messages of a deployment or a device. */
export async function telemetryCharts(by, key) {
  const points = await get(`/telemetry/series${query({ by, key, limit: 500 })}`);
  if (!points.length) return empty("No telemetry over time yet.");
  const series = (label, pick) => ({ label, points: points.map((p) => [p.time, pick(p)]).filter(([, y]) => y !== null && y !== undefined) });
  const opts = { xLabel: "time", time: true };
  return h("div", { class: "charts" },
    lineChart("Requests per second", [series("req/s", (p) => (p.window_s ? p.requests / p.window_s : null))], opts),
    lineChart("Latency (ms)", [series("avg", (p) => p.latency_avg_ms), series("p50", (p) => p.latency_p50_ms),
      series("p95", (p) => p.latency_p95_ms)].filter((s) => s.points.length), opts),
    lineChart("Errors per message", [series("errors", (p) => p.errors)], opts));
}
