// Line charts with uPlot (canvas, about 50 kB): one x axis, one or more series.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { h } from "./dom.js";

const COLORS = ["#1f6fd1", "#d1491f", "#2a9d4b", "#8e44ad", "#c79100", "#00838f"];

/**
 * A chart of series sharing an x axis (steps or times).
 * series: [{ label, points: [[x, y], ...] }]. Returns the wrapper element.
 */
export function lineChart(title, series, { xLabel = "step", time = false, width = 520 } = {}) {
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const columns = series.map((s) => {
    const ys = new Array(xs.length).fill(null);
    for (const [x, y] of s.points) ys[index.get(x)] = y;
    return ys;
  });
  const total = series.reduce((n, s) => n + s.points.length, 0);
  const box = h("figure", {
    class: "chart",
    "data-points": total,
    "data-title": title,
  });
  box.append(h("figcaption", {}, title));
  const opts = {
    width,
    height: 220,
    scales: { x: { time } },
    axes: [{ label: xLabel }, {}],
    series: [
      { label: xLabel },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: COLORS[i % COLORS.length],
        width: 2,
        spanGaps: true,
        points: { show: xs.length < 60 },
      })),
    ],
  };
  const plot = new uPlot(opts, [xs, ...columns], box);
  box._plot = plot;
  // A text summary for screen readers: a canvas says nothing by itself.
  box.append(
    h(
      "p",
      { class: "sr-only" },
      series.map((s) => `${s.label}: ${s.points.length} points, last ${s.points.at(-1)?.[1] ?? "none"}. `),
    ),
  );
  return box;
}
