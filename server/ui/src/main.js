// Entry: sign in with a token, then route to the pages.
import "./style.css";
import { ApiError, get, token } from "./api.js";
import { fill, h, link } from "./dom.js";
import { route, start, render } from "./router.js";
import { session } from "./session.js";
import { runsPage } from "./pages/runs.js";
import { runPage } from "./pages/run.js";
import { comparePage } from "./pages/compare.js";
import { modelsPage, modelPage, versionPage } from "./pages/models.js";
import { lineagePage } from "./pages/lineage.js";
import { deploymentsPage, deploymentPage } from "./pages/deployments.js";
import { devicesPage, devicePage } from "./pages/devices.js";

const NAV = [
  ["/runs", "Runs"],
  ["/models", "Models"],
  ["/deployments", "Deployments"],
  ["/devices", "Devices"],
];

// `amlpkg ui` opens /ui/#token=...: the fragment never reaches a server or a log.
// Keep it for this tab and take it out of the address bar and the history at once.
function tokenFromFragment() {
  const found = new URLSearchParams(location.hash.slice(1)).get("token");
  if (found) {
    token.set(found);
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function loginPage(message) {
  fill(document.getElementById("nav"));
  fill(document.getElementById("who"));
  const input = h("input", {
    id: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help",
  });
  const form = h(
    "form",
    { class: "login", onsubmit: (event) => {
      event.preventDefault();
      token.set(input.value.trim());
      boot();
    } },
    h("h1", {}, "Sign in"),
    message ? h("p", { class: "error", role: "alert" }, message) : null,
    h("label", { for: "token" }, "API token"),
    input,
    h("p", { id: "token-help", class: "help" },
      "A token from `amlpkg server token create`; kept for this tab only."),
    h("button", { type: "submit" }, "Sign in"),
  );
  fill(document.getElementById("main"), form);
  input.focus();
}

function signOut() {
  token.clear();
  Object.assign(session, { id: null, name: null, role: null });
  loginPage("Signed out.");
}

function errorPage(main, error) {
  if (error instanceof ApiError && error.status === 401) {
    token.clear();
    loginPage("The token was refused (missing, expired or revoked).");
    return;
  }
  const text = error instanceof ApiError ? `${error.status}: ${error.message}` : String(error);
  main.append(h("p", { class: "error", role: "alert" }, text));
}

async function boot() {
  if (!token.get()) return loginPage();
  try {
    Object.assign(session, await get("/whoami"));
  } catch (error) {
    token.clear();
    return loginPage(error instanceof ApiError && error.status === 401
      ? "That token was refused (missing, expired or revoked)."
      : `The server did not answer: ${error.message}`);
  }
  fill(document.getElementById("nav"), h("ul", {}, NAV.map(([p, t]) => h("li", {}, link(p, t)))));
  fill(
    document.getElementById("who"),
    h("span", { id: "role", "data-role": session.role }, `${session.name} (${session.role})`),
    h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"),
  );
  if (location.pathname === "/ui/" || location.pathname === "/ui") {
    history.replaceState(null, "", "/ui/runs");
  }
  render();
}

route("/runs", runsPage);
route("/runs/:id", runPage);
route("/compare", comparePage);
route("/models", modelsPage);
route("/models/:name", modelPage);
route("/models/:name/:version", versionPage);
route("/lineage/:kind/:id*", lineagePage);
route("/deployments", deploymentsPage);
route("/deployments/:name", deploymentPage);
route("/devices", devicesPage);
route("/devices/:id", devicePage);

tokenFromFragment();
start(errorPage, boot);
