// The /api/v1 client. The token lives in sessionStorage (gone with the tab) and travels
// as a bearer header, never a cookie, so another site cannot make the browser send it.

const KEY = "amlpkg.token";
const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code;
    this.hint = body?.hint;
  }
}

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (text) => sessionStorage.setItem(KEY, text),
  clear: () => sessionStorage.removeItem(KEY),
};

async function send(method, path, { raw = false } = {}) {
  const headers = { Authorization: `Bearer ${token.get() ?? ""}` };
  const answer = await fetch(BASE + path, { method, headers });
  if (!answer.ok) {
    let body = null;
    try {
      body = await answer.json();
    } catch {
      // not JSON: keep the status alone
    }
    throw new ApiError(answer.status, body);
  }
  return raw ? answer : answer.json();
}

export const get = (path) => send("GET", path);
export const getRaw = (path) => send("GET", path, { raw: true });
export const post = (path) => send("POST", path);
export const del = (path) => send("DELETE", path);

/** Build a query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
