// The model registry: models, a model's versions, and one version with its signature,
// digest, opset, variants (measured speed-up and accuracy) and packages.
import { get, query } from "../api.js";
import { add, badge, bytes, empty, facts, h, link, num, seg, short, table, when } from "../dom.js";

const versionLink = (name, v, text = `${name}:${v}`) => link(`/models/${seg(name)}/${seg(v)}`, text);

export async function modelsPage(main) {
  const models = await get("/models");
  add(main, h("h1", {}, "Models"), models.length
    ? table(null, ["Model", "Latest", "Versions", "Aliases", "Registered"], models.map((m) => h("tr", {},
      h("td", {}, link(`/models/${seg(m.name)}`, m.name)),
      h("td", {}, versionLink(m.name, m.latest_version, `v${m.latest_version}`)),
      h("td", { class: "num" }, m.versions),
      h("td", {}, Object.entries(m.aliases).map(([a, v]) => h("span", { class: "tag" }, `@${a} → v${v}`))),
      h("td", {}, when(m.created)))), { id: "models-table" })
    : empty("No registered models: `amlpkg models register` makes one."));
}

export async function modelPage(main, { name }) {
  const versions = await get(`/models/${seg(name)}/versions`);
  add(main, h("h1", {}, "Model ", name), table(null,
    ["Version", "Aliases", "sha256", "Opset", "Size", "Run", "Registered"],
    versions.map((v) => h("tr", {},
      h("td", {}, versionLink(name, v.version, `v${v.version}`)),
      h("td", {}, v.aliases.map((a) => h("span", { class: "tag" }, `@${a}`))),
      h("td", { class: "mono" }, short(v.sha256)),
      h("td", { class: "num" }, v.opset ?? "–"),
      h("td", { class: "num" }, bytes(v.size)),
      h("td", {}, v.run_id ? link(`/runs/${seg(v.run_id)}`, short(v.run_id, 8)) : "–"),
      h("td", {}, when(v.created)))), { id: "versions-table" }));
}

function signature(sig) {
  const rows = (kind, tensors = []) => tensors.map((t) => h("tr", {},
    h("td", {}, kind), h("td", { class: "mono" }, t.name), h("td", {}, t.datatype),
    h("td", { class: "mono" }, `[${(t.shape ?? []).join(", ")}]`)));
  return table(null, ["", "Name", "Datatype", "Shape"], [...rows("input", sig.inputs), ...rows("output", sig.outputs)], { id: "signature" });
}

function variants(found) {
  if (!found.length) return empty("No optimized variants: `amlpkg optimize` measures some.");
  return table(null, ["Variant", "Target", "Kind", "Precision", "Speed-up", "p50 batch 1", "Max abs error", "Agreement", "Size", "Decision"],
    found.map((v) => h("tr", { class: v.chosen ? "chosen" : null },
      h("td", { class: "mono" }, link(`/lineage/variant/${seg(v.id)}`, v.id.split("/").pop())),
      h("td", {}, v.target), h("td", {}, v.kind), h("td", {}, v.precision),
      h("td", { class: "num" }, v.measurements.speedup ? `${num(v.measurements.speedup, 3)}×` : "–"),
      h("td", { class: "num" }, v.measurements.batches?.["1"] ? `${num(v.measurements.batches["1"].p50_ms)} ms` : "–"),
      h("td", { class: "num" }, num(v.accuracy.max_abs_error)),
      h("td", { class: "num" }, v.accuracy.agreement !== undefined ? num(v.accuracy.agreement) : "–"),
      h("td", { class: "num" }, bytes(v.size)),
      h("td", {}, v.chosen ? badge("chosen", "completed") : v.accepted ? badge("accepted", "running") : badge("rejected", "failed"),
        h("span", { class: "reason" }, " ", v.reason)))), { id: "variants-table" });
}

export async function versionPage(main, { name, version }) {
  const ref = `/models/${seg(name)}/versions/${seg(version)}`;
  const [v, found, packages] = await Promise.all([
    get(ref), get(`${ref}/variants`), get(`/packages${query({ model: name })}`),
  ]);
  const mine = packages.filter((p) => p.model_version === v.version);
  add(main, 
    h("h1", {}, "Model version ", v.ref),
    h("p", {}, v.aliases.map((a) => [h("span", { class: "tag" }, `@${a}`), " "]),
      link(`/lineage/model_version/${seg(v.ref)}`, "Lineage of this version")),
    facts([["Digest (sha256)", h("span", { class: "mono", id: "digest" }, v.sha256)], ["Size", bytes(v.size)],
      ["Opset", v.opset], ["Source", h("span", { class: "mono" }, v.source)],
      ["Run", v.run_id ? link(`/runs/${seg(v.run_id)}`, v.run_id) : null], ["Description", v.description],
      ["Registered", when(v.created)],
      ["Tags", Object.entries(v.tags).map(([k, t]) => h("span", { class: "tag" }, `${k}=${t}`))]]),
    h("section", { "aria-labelledby": "h-sig" }, h("h2", { id: "h-sig" }, "Signature"), signature(v.signature)),
    h("section", { "aria-labelledby": "h-var" }, h("h2", { id: "h-var" }, "Optimized variants"), variants(found)),
    h("section", { "aria-labelledby": "h-pkg" }, h("h2", { id: "h-pkg" }, "Packages"), mine.length
      ? table(null, ["Package", "Format", "Flavor", "Image", "Digest", "Size", "Built"], mine.map((p) => h("tr", {},
        h("td", { class: "mono" }, link(`/lineage/package/${seg(p.id)}`, p.id)), h("td", {}, p.format), h("td", {}, p.flavor),
        h("td", { class: "mono" }, p.image_ref ?? "–"), h("td", { class: "mono" }, short(p.repo_digest ?? p.image_id)),
        h("td", { class: "num" }, bytes(p.size_bytes)), h("td", {}, when(p.created)))))
      : empty("Not packaged yet.")),
  );
}
