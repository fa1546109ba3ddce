/* The door app's small helpers: DOM building, clocks, codes and the CSRF token (window.DoorUtil).
 *
 * Loaded before door.js and the other door-*.js files, which take what they need from DoorUtil.
 */
window.DoorUtil = (() => {
  "use strict";

  const body = document.body;

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  function newId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function clock(iso) {
    if (!iso) return "";
    return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }

  function dayAndClock(iso) {
    const at = new Date(iso);
    return `${at.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short" })}, ${clock(iso)}`;
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  function normaliseCode(raw) {
    return raw.toUpperCase().replace(/[^A-Z0-9]/g, "");
  }

  function cookie(name) {
    const found = document.cookie.split("; ").find((part) => part.startsWith(`${name}=`));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  function csrfToken() {
    // The cached copy of the page may carry an old token; the cookie is always the current one.
    return cookie("csrftoken") || body.dataset.csrf || "";
  }

  return { $, el, newId, clock, dayAndClock, plural, normaliseCode, csrfToken };
})();
