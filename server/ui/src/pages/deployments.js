// Deployments: the newest revision of each, and one deployment's revisions, endpoints and
// telemetry. Roll back and delete are shown to contributors and owners only (the API
// refuses a reader anyway).
import { get, post, del } from "../api.js";
import { add, badge, empty, fill, h, link, seg, table, when } from "../dom.js";
import { can } from "../session.js";
import { render } from "../router.js";
import { summaryFacts, telemetryCharts } from "./telemetry.js";
import { pageOf } from "./lineage.js";

function endpoints(map) {
  const found = Object.entries(map).filter(([, url]) => url);
  return found.length ? found.map(([kind, url]) => h("div", { class: "mono" }, `${kind} ${url}`)) : "–";
}

export async function deploymentsPage(main) {
  const [found, telemetry] = await Promise.all([get("/deployments"), get("/telemetry/deployments")]);
  const byKey = new Map(telemetry.map((t) => [t.key, t]));
  add(main, h("h1", {}, "Deployments"), found.length
    ? table(null, ["Deployment", "Revision", "Target", "Model", "Status", "Endpoints", "Requests", "p95", "Updated"],
      found.map((d) => {
        const t = byKey.get(d.id);
        return h("tr", {},
          h("td", {}, link(`/deployments/${seg(d.name)}`, d.name)), h("td", { class: "num" }, d.revision),
          h("td", {}, d.target), h("td", {}, d.model ? link(pageOf("model_version", d.model), d.model) : "–"),
          h("td", {}, badge(d.status)), h("td", {}, endpoints(d.endpoints)),
          h("td", { class: "num" }, t ? t.requests : "–"),
          h("td", { class: "num" }, t?.latency_p95_ms ? `${t.latency_p95_ms.toFixed(2)} ms` : "–"),
          h("td", {}, when(d.updated)));
      }), { id: "deployments-table" })
    : empty("No deployments: `amlpkg deploy` makes one."));
}

function actions(name, out) {
  if (!can("contributor")) return null;
  const act = (label, confirmLabel, call) => {
    const confirm = h("button", { type: "button", class: "danger", hidden: true, onclick: async () => {
      confirm.disabled = true;
      try {
        const made = await call();
        fill(out, h("p", { role: "status" }, `${label}: revision ${made.revision} is ${made.status}.`));
        setTimeout(render, 1200);
      } catch (error) {
        fill(out, h("p", { class: "error", role: "alert" }, `${label} failed: ${error.message}`));
      }
    } }, confirmLabel);
    const ask = h("button", { type: "button", onclick: () => { confirm.hidden = false; confirm.focus(); } }, label);
    return [ask, confirm];
  };
  return h("div", { class: "actions", id: "actions" },
    act("Roll back", "Confirm roll back", () => post(`/deployments/${seg(name)}/rollback`)),
    act("Delete", "Confirm delete", () => del(`/deployments/${seg(name)}`)));
}

export async function deploymentPage(main, { name }) {
  const revisions = await get(`/deployments/${seg(name)}`);
  const latest = revisions[0];
  const summary = (await get(`/telemetry/deployments?deployment=${seg(latest.id)}`))[0];
  const out = h("div", { "aria-live": "polite" });
  add(main, 
    h("h1", {}, "Deployment ", name),
    h("p", {}, badge(latest.status), " revision ", latest.revision, " on ", latest.target, " · ",
      link(`/lineage/deployment/${seg(latest.id)}`, "Lineage of this deployment")),
    actions(name, out), out,
    h("section", { "aria-labelledby": "h-rev" }, h("h2", { id: "h-rev" }, "Revisions"),
      table(null, ["Revision", "Model", "Image", "Status", "Endpoints", "By", "Created"], revisions.map((d) => h("tr", {},
        h("td", { class: "num" }, d.revision), h("td", {}, d.model ? link(pageOf("model_version", d.model), d.model) : "–"),
        h("td", { class: "mono" }, d.image ?? "–"), h("td", {}, badge(d.status), d.reason ? ` ${d.reason}` : ""),
        h("td", {}, endpoints(d.endpoints)), h("td", {}, d.created_by), h("td", {}, when(d.created)))), { id: "revisions" })),
    h("section", { "aria-labelledby": "h-tel" }, h("h2", { id: "h-tel" }, `Telemetry of ${latest.id}`),
      summaryFacts(summary), await telemetryCharts("deployment", latest.id)),
  );
}
