// The device fleet: when each device was last seen, the model it should serve (desired)
// beside the one it reports, and its telemetry.
import { get } from "../api.js";
import { add, ago, badge, empty, facts, h, link, seg, short, table, when } from "../dom.js";
import { pageOf } from "./lineage.js";
import { summaryFacts, telemetryCharts } from "./telemetry.js";

const sync = (d) => d.in_sync === null ? badge("unknown", "stopped") : d.in_sync ? badge("in sync", "completed") : badge("drift", "failed");
const model = (ref) => (ref ? link(pageOf("model_version", ref), ref) : "–");

export async function devicesPage(main) {
  const [records, summaries] = await Promise.all([get("/device-records"), get("/devices")]);
  const byKey = new Map(summaries.map((s) => [s.key, s]));
  add(main, h("h1", {}, "Devices"), records.length
    ? table(null, ["Device", "Last seen", "Desired model", "Desired sha256", "Reported model", "State", "Deployment", "Requests", "Errors"],
      records.map((d) => {
        const s = byKey.get(d.id);
        return h("tr", {},
          h("td", {}, link(`/devices/${seg(d.id)}`, d.id)), h("td", { title: when(d.last_seen) }, ago(d.last_seen)),
          h("td", {}, model(d.desired_model)), h("td", { class: "mono" }, short(d.desired_sha256)),
          h("td", {}, model(d.reported_model)), h("td", {}, sync(d)),
          h("td", {}, d.deployment_id ?? d.desired_deployment_id ?? "–"),
          h("td", { class: "num" }, s ? s.requests : "–"), h("td", { class: "num" }, s ? s.errors : "–"));
      }), { id: "devices-table" })
    : empty("No devices yet: an IoT Edge deploy or device telemetry adds them."));
}

export async function devicePage(main, { id }) {
  const [d, summaries] = await Promise.all([get(`/device-records/${seg(id)}`), get("/devices")]);
  add(main, 
    h("h1", {}, "Device ", d.id),
    h("p", {}, sync(d), " ", link(`/lineage/device/${seg(d.id)}`, "Lineage of this device")),
    facts([["Last seen", `${ago(d.last_seen)} (${when(d.last_seen)})`], ["Last telemetry", when(d.last_telemetry)],
      ["Module", d.module], ["Desired model", model(d.desired_model)],
      ["Desired sha256", h("span", { class: "mono" }, d.desired_sha256 ?? "–")],
      ["Reported model", model(d.reported_model)], ["Deployment reported", d.deployment_id],
      ["Deployment desired", d.desired_deployment_id], ["First seen", when(d.first_seen)]]),
    h("section", { "aria-labelledby": "h-tel" }, h("h2", { id: "h-tel" }, "Telemetry"),
      summaryFacts(summaries.find((s) => s.key === d.id)), await telemetryCharts("device", d.id)),
  );
}
