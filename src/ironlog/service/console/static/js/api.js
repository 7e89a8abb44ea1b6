// The HTTP API with the key the user signed in with.  The key lives in
// sessionStorage only (gone when the tab closes): never in a URL or a cookie.

const KEY = "ironlog.key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
  who: null,
};

export async function request(path, { method = "GET", body, accept = "application/json", key } = {}) {
  const headers = { Accept: accept };
  const k = key || session.key;
  if (k) headers.Authorization = `Bearer ${k}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "the server cannot be reached");
  }
  if (!res.ok) {
    let code = "error";
    let message = `${res.status} ${res.statusText}`;
    try {
      const j = await res.json();
      code = j.error.code;
      message = j.error.message;
    } catch {
      /* not an ironlog error body */
    }
    throw new ApiError(res.status, code, message);
  }
  return res;
}

export async function api(path, opts = {}) {
  const res = await request(path, opts);
  return res.json();
}

export function q(params) {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") s.set(k, v);
  const t = s.toString();
  return t ? `?${t}` : "";
}

export const enc = encodeURIComponent;

// A 404 for a route the server does not have (an older server): the
// framework's own "Not Found", not an ironlog answer about a log or an entry
// ("no such log", "entry 9 is not covered by a signed checkpoint yet").
export function routeMissing(e) {
  return e.status === 404 && /^not found$/i.test(e.message || "");
}

// Endpoints that may not exist on this server (newer APIs): their absence
// hides what needs them.  Remembered per page load.
const missing = new Set();
export async function optional(kind, path) {
  if (missing.has(kind)) return null;
  try {
    return await api(path);
  } catch (e) {
    if (routeMissing(e)) {
      missing.add(kind);
      return null;
    }
    throw e;
  }
}
