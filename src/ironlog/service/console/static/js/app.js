// The console: sign in, then hash routes (#/logs, #/search?..., #/entry/T/L/N, #/admin).
import { api, ApiError, session } from "./api.js";
import { clear, field, h, message } from "./dom.js";
import { adminView } from "./views/admin.js";
import { entryView } from "./views/entry.js";
import { logsView } from "./views/logs.js";
import { searchView } from "./views/search.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const signout = document.getElementById("signout");

signout.addEventListener("click", () => {
  session.key = null;
  session.who = null;
  sessionStorage.removeItem("ironlog.who");
  location.hash = "#/signin";
  route();
});

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}

function navigation() {
  const w = session.who;
  const links = [["#/logs", "Logs"]];
  if (w && !w.operator && (w.scopes.includes("read") || w.scopes.includes("admin"))) {
    links.push(["#/search", "Search"]);
  }
  if (w && (w.operator || (w.scopes.includes("admin") && !w.log))) links.push(["#/admin", "Manage"]);
  links.push(["/ui/verify", "Verify a proof"]);
  const here = `#/${parseHash().parts[0] || ""}`;
  clear(
    nav,
    h("ul", {}, links.map(([href, text]) =>
      h("li", {}, h("a", { href, "aria-current": href === here ? "page" : null, text })),
    )),
  );
  clear(who, w ? (w.operator ? "operator key" : `tenant ${w.tenant} · ${w.scopes.join(", ")}${w.log ? ` · log ${w.log}` : ""}`) : "");
  signout.hidden = !w;
}

function signinView() {
  const input = h("input", { type: "password", name: "key", autocomplete: "off", required: true, spellcheck: "false", placeholder: "ilk_…" });
  const out = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card narrow", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title", text: "Sign in" }),
    h("p", { text: "Use an ironlog API key. It is kept in this tab only (sessionStorage) and sent as a bearer token; it is never put in a URL or a cookie." }),
    field("API key", input),
    h("button", { type: "submit", class: "primary", text: "Sign in" }),
    out,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    try {
      const w = await api("/v1/whoami", { key });
      session.key = key;
      session.who = w;
      sessionStorage.setItem("ironlog.who", JSON.stringify(w));
      location.hash = "#/logs";
    } catch (e) {
      clear(out, message("error", e instanceof ApiError && e.status === 401 ? "That key is not valid (unknown, revoked or expired)." : e.message));
    }
  });
  clear(main, form);
  input.focus();
}

export async function route() {
  if (!session.key) {
    navigation();
    return signinView();
  }
  if (!session.who) {
    try {
      session.who = JSON.parse(sessionStorage.getItem("ironlog.who") || "null") || (await api("/v1/whoami"));
    } catch {
      session.key = null;
      return route();
    }
  }
  navigation();
  const { parts, params } = parseHash();
  const view = { logs: logsView, search: searchView, entry: entryView, admin: adminView }[parts[0]];
  if (!view) {
    location.replace("#/logs");
    return;
  }
  clear(main, h("p", { class: "loading", text: "Loading…" }));
  try {
    await view(main, parts.slice(1), params);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      session.key = null;
      session.who = null;
      return route();
    }
    clear(main, message("error", e.message));
  }
}

window.addEventListener("hashchange", () => {
  route().then(() => main.focus({ preventScroll: true }));
});
route();
