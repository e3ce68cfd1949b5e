// Writes static/manifest.json: a hash of everything the bundle is built from, so a test can
// tell a committed bundle that no longer matches its sources (tests/server/ui/test_bundle.py
// computes the same hash: sorted paths, then for each "path\0bytes\0").
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const out = join(root, "../src/amlpkg/server/static");
export const INPUTS = ["index.html", "package.json", "package-lock.json", "vite.config.js", "src"];

function walk(path) {
  if (statSync(path).isDirectory()) {
    return readdirSync(path).flatMap((name) => walk(join(path, name)));
  }
  return [path];
}

const files = INPUTS.flatMap((p) => walk(join(root, p)))
  .map((p) => relative(root, p).split(sep).join("/"))
  .sort();
const hash = createHash("sha256");
for (const name of files) {
  hash.update(name + "\0");
  hash.update(readFileSync(join(root, name)));
  hash.update("\0");
}
const assets = {};
for (const p of walk(out)) {
  const name = relative(out, p).split(sep).join("/");
  if (name !== "manifest.json") assets[name] = statSync(p).size;
}
const manifest = { source_sha256: hash.digest("hex"), inputs: files, assets };
writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`manifest: ${files.length} inputs, ${Object.keys(assets).length} assets`);
