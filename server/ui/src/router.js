// A small History API router: /ui/<page>/<params>. The server answers index.html for any
// /ui/ path, so a reload or a shared link opens the same page.

const routes = [];
let current = { stop: null };
let onError = (main, error) => main.replaceChildren(String(error));

/** Add a route: a pattern such as "/runs/:id" and a render(main, params, query) function. */
export function route(pattern, render) {
  const names = [];
  const source = pattern.replace(/:(\w+)(\*)?/g, (_, name, rest) => {
    names.push(name);
    return rest ? "(.+)" : "([^/]+)";
  });
  routes.push({ regex: new RegExp(`^${source}/?$`), names, render });
}

export function navigate(path) {
  history.pushState(null, "", "/ui" + path);
  render();
}

/** Render the page of the current URL; a page may return a stop() for its timers. */
export function render() {
  current.stop?.();
  const path = location.pathname.replace(/^\/ui/, "") || "/";
  const main = document.getElementById("main");
  for (const { regex, names, render: page } of routes) {
    const match = regex.exec(path);
    if (!match) continue;
    const params = Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(match[i + 1])]));
    main.replaceChildren();
    const mine = { stop: null };
    current = mine;
    // A page may be async and return a stop() for its timers; a page left before it
    // finished loading is stopped as soon as it hands that over.
    Promise.resolve(page(main, params, new URLSearchParams(location.search)))
      .then((stop) => {
        if (typeof stop !== "function") return;
        if (current === mine) mine.stop = stop;
        else stop();
      })
      .catch((error) => onError(main, error));
    for (const a of document.querySelectorAll("#nav a")) {
      a.toggleAttribute("aria-current", path.startsWith(new URL(a.href).pathname.slice(3)));
    }
    main.focus({ preventScroll: true });
    return;
  }
  main.replaceChildren(document.createTextNode("No such page."));
}

/** Follow in-app links without a reload (modified clicks open tabs as usual). */
export function start(errorPage, boot) {
  onError = errorPage;
  document.addEventListener("click", (event) => {
    const a = event.target.closest?.("a[href^='/ui/']");
    if (!a || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || a.target) return;
    event.preventDefault();
    navigate(a.getAttribute("href").slice(3));
  });
  window.addEventListener("popstate", render);
  boot();
}
