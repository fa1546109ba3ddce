/* The door page's service worker (served as /door/sw.js, scope /door/): the page opens with no network.
 *
 * - /door/ (the page): network first, so a signed-out or updated page wins when online; the cached
 *   copy when the network fails or is slower than PAGE_TIMEOUT_MS.
 * - /static/… (scripts, styles, icons) and the web manifest: from the cache, refreshed behind.
 *   In production their names carry a content hash, so a new release is new URLs.
 * - /door/api/…: never touched. Offline, the page judges scans itself from IndexedDB.
 *
 * The static URLs are not listed here (they are hashed in production): on install the worker reads
 * them from the page itself, and the page also posts the ones it loaded.
 */
"use strict";

const CACHE = "door-v1";
const PAGE = "/door/";
const PAGE_TIMEOUT_MS = 4000;
const ALWAYS = [
  "/door/manifest.webmanifest",
  "/static/ticketing/door-icon-192.png",
  "/static/ticketing/door-icon-512.png",
];

function cacheable(response) {
  // Not a redirect (to the sign-in page), not an error page, not an opaque answer.
  return response && response.status === 200 && !response.redirected && response.type === "basic";
}

function cacheableUrl(path) {
  return path === "/door/manifest.webmanifest" || path.startsWith("/static/");
}

async function cacheUrls(urls) {
  const cache = await caches.open(CACHE);
  await Promise.all(
    urls.map(async (url) => {
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        if (cacheable(response)) await cache.put(url, response);
      } catch (error) {
        /* cached next time the page loads it */
      }
    }),
  );
}

async function cachePage() {
  const cache = await caches.open(CACHE);
  const response = await fetch(PAGE, { credentials: "same-origin", cache: "no-store" });
  if (!cacheable(response)) return;
  const html = await response.clone().text();
  await cache.put(PAGE, response);
  const assets = new Set(ALWAYS);
  for (const match of html.matchAll(/(?:src|href)="(\/static\/[^"?#]+)"/g)) assets.add(match[1]);
  await cacheUrls([...assets]);
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    cachePage()
      .catch(() => {}) // offline or signed out: the page caches itself on its next load
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith("door-") && name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type !== "cache" || !Array.isArray(data.urls)) return;
  const urls = data.urls
    .map((url) => new URL(url, self.location.origin))
    .filter((url) => url.origin === self.location.origin && cacheableUrl(url.pathname))
    .map((url) => url.pathname + url.search);
  event.waitUntil(cacheUrls([...new Set([...ALWAYS, ...urls])]));
});

async function page(event) {
  const cache = await caches.open(CACHE);
  const network = fetch(event.request).then(async (response) => {
    if (cacheable(response)) await cache.put(PAGE, response.clone());
    return response;
  });
  const late = new Promise((resolve) => setTimeout(resolve, PAGE_TIMEOUT_MS, null));
  try {
    const first = await Promise.race([network, late]);
    if (first) return first;
    const cached = await cache.match(PAGE);
    if (cached) {
      event.waitUntil(network.catch(() => {})); // still refresh the cache when it arrives
      return cached;
    }
    return await network;
  } catch (error) {
    const cached = await cache.match(PAGE);
    if (cached) return cached;
    throw error;
  }
}

async function asset(event) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(event.request, { ignoreVary: true });
  const network = fetch(event.request).then(async (response) => {
    if (cacheable(response)) await cache.put(event.request, response.clone());
    return response;
  });
  if (cached) {
    event.waitUntil(network.catch(() => {}));
    return cached;
  }
  return network;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/door/api/") || url.pathname === "/door/sw.js") return; // never cached
  if (url.pathname === PAGE && request.mode === "navigate") {
    event.respondWith(page(event));
  } else if (cacheableUrl(url.pathname)) {
    event.respondWith(asset(event));
  }
});
