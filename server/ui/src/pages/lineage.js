// The lineage of any node as a graph (cytoscape): what it came from, back to the run, and
// everything made from it. Clicking a node opens its page; the list below the graph does
// the same for keyboards and screen readers.
import { get } from "../api.js";
import { add, empty, h, link, seg, short } from "../dom.js";
import { navigate } from "../router.js";

const COLORS = {
  run: "#1f6fd1", model_version: "#8e44ad", variant: "#c77700", package: "#2a7d4b",
  image: "#4a6572", deployment: "#c0392b", device: "#00838f",
};

/** The page that shows a node, or its lineage when it has no page of its own. */
export function pageOf(kind, id) {
  if (kind === "run") return `/runs/${seg(id)}`;
  if (kind === "model_version" && id.includes(":")) {
    const at = id.lastIndexOf(":");
    return `/models/${seg(id.slice(0, at))}/${seg(id.slice(at + 1))}`;
  }
  if (kind === "deployment") return `/deployments/${seg(id.split(":")[0])}`;
  if (kind === "device") return `/devices/${seg(id)}`;
  return lineageOf(kind, id);
}

export const lineageOf = (kind, id) => `/lineage/${seg(kind)}/${seg(id)}`;

function label(kind, id) {
  const text = kind === "run" || kind === "image" ? short(id, 10) : id.length > 28 ? `${id.slice(0, 26)}…` : id;
  return `${kind.replace("_", " ")}\n${text}`;
}

export async function lineagePage(main, { kind, id }) {
  const found = await get(`/lineage/${seg(kind)}/${seg(id)}`);
  const edges = [...found.upstream, ...found.downstream];
  const nodes = new Map([[`${kind}/${id}`, { kind, id }]]);
  for (const e of edges) {
    nodes.set(`${e.src_kind}/${e.src_id}`, { kind: e.src_kind, id: e.src_id });
    nodes.set(`${e.dst_kind}/${e.dst_id}`, { kind: e.dst_kind, id: e.dst_id });
  }
  const graph = h("div", { id: "graph", class: "graph", role: "img",
    "aria-label": `Lineage graph of ${kind} ${id}: ${nodes.size} nodes, ${edges.length} edges; the list below has them all` });
  add(main, 
    h("h1", {}, "Lineage of ", kind.replace("_", " "), " ", h("span", { class: "mono" }, id)),
    h("p", { class: "help" }, "Click a node to open it; “lineage” re-centres the graph on it."),
    graph,
  );
  const seen = new Set();
  const unique = edges.filter((e) => {
    const k = `${e.src_kind}/${e.src_id}>${e.dst_kind}/${e.dst_id}>${e.relation}`;
    return seen.has(k) ? false : seen.add(k);
  });
  add(main, h("section", { "aria-labelledby": "h-nodes" }, h("h2", { id: "h-nodes" }, "Nodes"),
    h("ul", { id: "nodes", class: "nodes" }, [...nodes.values()].map((n) => h("li", { "data-kind": n.kind },
      h("span", { class: "kind", style: `border-color:${COLORS[n.kind] ?? "#666"}` }, n.kind), " ",
      link(pageOf(n.kind, n.id), n.id, { class: "node-link", "data-node": `${n.kind}/${n.id}` }),
      " · ", link(lineageOf(n.kind, n.id), "lineage", { "aria-label": `lineage of ${n.kind} ${n.id}` })))),
    h("h2", {}, "Edges"),
    unique.length ? h("ul", { class: "edges" }, unique.map((e) => h("li", {},
      `${e.src_kind} ${e.src_id} —${e.relation}→ ${e.dst_kind} ${e.dst_id}`, e.detail ? h("span", { class: "help" }, ` (${e.detail})`) : null)))
      : empty("No lineage recorded for this node.")));

  // Loaded with this page only: the graph library is most of the bundle.
  const { default: cytoscape } = await import("cytoscape");
  const cy = cytoscape({
    container: graph,
    elements: [
      ...[...nodes.entries()].map(([key, n]) => ({ data: { id: key, label: label(n.kind, n.id), kind: n.kind, raw: n.id,
        color: COLORS[n.kind] ?? "#666", focus: key === `${kind}/${id}` ? 1 : 0 } })),
      ...unique.map((e, i) => ({ data: { id: `e${i}`, source: `${e.src_kind}/${e.src_id}`,
        target: `${e.dst_kind}/${e.dst_id}`, label: e.relation } })),
    ],
    style: [
      { selector: "node", style: { label: "data(label)", "text-wrap": "wrap", "text-valign": "bottom",
        "text-margin-y": 4, "font-size": 11, "text-max-width": 150, "background-color": "data(color)", width: 26, height: 26, color: "#222" } },
      { selector: "node[focus = 1]", style: { "border-width": 4, "border-color": "#111", width: 34, height: 34 } },
      { selector: "edge", style: { "curve-style": "bezier", "target-arrow-shape": "triangle", width: 1.5,
        label: "data(label)", "font-size": 9, color: "#555", "text-rotation": "autorotate", "line-color": "#999",
        "target-arrow-color": "#999" } },
    ],
    // Left to right, as the chain reads: run -> version -> variant -> package -> deployment -> device.
    layout: { name: "breadthfirst", directed: true, spacingFactor: 1.1, padding: 30,
      transform: (_node, p) => ({ x: p.y * 2.2, y: p.x / 2 }) },
    wheelSensitivity: 0.3,
    minZoom: 0.2,
    maxZoom: 1.4, // a short chain is not blown up to fill the box
    boxSelectionEnabled: false,
  });
  cy.on("tap", "node", (event) => navigate(pageOf(event.target.data("kind"), event.target.data("raw"))));
  cy.on("mouseover", "node", () => { graph.style.cursor = "pointer"; });
  cy.on("mouseout", "node", () => { graph.style.cursor = ""; });
  graph._cy = cy; // the browser tests click a node where it is drawn
  return () => cy.destroy();
}
