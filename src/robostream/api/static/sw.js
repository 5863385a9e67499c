/* robostream viewer: the Service Worker that keeps what was viewed, so a session viewed once
 * replays offline.
 *
 * Served as /static/sw.js with "Service-Worker-Allowed: /" and registered with scope "/": it
 * sees the viewer page, its static files, the API's GETs (sessions, history ranges, frame lists,
 * stats) and the images' presigned S3 URLs. Every answer is taken from the network first and a
 * copy kept in IndexedDB (database "robostream-viewer", store "responses"); when the network
 * fails, the kept copy answers. Keys: the path and query for the API (history ranges are kept
 * per range and level of detail asked), the path alone for the page and static files, and the
 * S3 object without its signature (a presigned URL changes when it is signed again).
 * Byte ranges of an S3 object (what a <video> asks for an H.264 segment) are answered from the
 * whole object, fetched once and kept, with 206 and Content-Range, online or off: an object's key
 * names the same bytes for good (keys are deterministic), so the kept copy is as good as the
 * network's and each range does not fetch it again.
 * Not kept: the live WebSocket, POSTs (robot calls), /healthz and /metrics, range requests to the
 * viewer's own origin, and objects of a store without CORS (their bodies cannot be read). */
"use strict";

const DB_NAME = "robostream-viewer";
const STORE = "responses";
const SIGNED = ["X-Amz-Signature", "Signature"];  // presigned S3 URLs (SigV4, SigV2)

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

let database = null;

function db() {
  if (!database) {
    database = new Promise((resolve, reject) => {
      const open = indexedDB.open(DB_NAME, 1);
      open.onupgradeneeded = () => open.result.createObjectStore(STORE, { keyPath: "key" });
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => { database = null; reject(open.error); };
    });
  }
  return database;
}

async function transaction(mode, work) {
  const store = (await db()).transaction(STORE, mode).objectStore(STORE);
  return new Promise((resolve, reject) => {
    const request = work(store);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** The key a request is kept under, and what it is, or null when it is not kept. */
function keyOf(request) {
  if (request.method !== "GET") return null;
  const url = new URL(request.url);
  if (url.origin === self.location.origin) {
    if (request.headers.has("Range")) return null;
    if (url.pathname === "/") return { key: "/", kind: "page" };
    if (url.pathname.startsWith("/static/")) return { key: url.pathname, kind: "static" };
    if (!url.pathname.startsWith("/v1/") || url.pathname === "/v1/live") return null;
    url.searchParams.delete("access_token");
    const kind = url.pathname === "/v1/telemetry" ? "history"
      : url.pathname.startsWith("/v1/frames") ? "frames" : "api";
    return { key: url.pathname + url.search, kind };
  }
  if (SIGNED.some((name) => url.searchParams.has(name))) return { key: url.origin + url.pathname, kind: "object" };
  return null;
}

async function keep(key, kind, response) {
  const row = {
    key, kind, status: response.status, statusText: response.statusText,
    headers: [...response.headers], body: await response.blob(), storedAt: Date.now(),
  };
  await transaction("readwrite", (store) => store.put(row));
  return row;
}

async function keptRow(key) {
  return transaction("readonly", (store) => store.get(key)).catch(() => undefined);
}

async function kept(key) {
  const row = await keptRow(key);
  return row ? new Response(row.body, { status: row.status, statusText: row.statusText, headers: row.headers }) : null;
}

/** Objects in S3 are asked for with CORS (a readable body to keep); an object store without CORS
 * still answers the page's own request, which is then kept in the Cache Storage instead. */
async function fromNetwork(request, kind) {
  if (kind !== "object") return { response: await fetch(request), opaque: false };
  try {
    return { response: await fetch(request.url, { mode: "cors", credentials: "omit" }), opaque: false };
  } catch (_) {
    return { response: await fetch(request), opaque: true };
  }
}

async function answer(event, key, kind) {
  let network;
  try {
    network = await fromNetwork(event.request, kind);
  } catch (error) {
    const copy = (await kept(key)) || (await caches.match(key));
    if (copy) return copy;
    throw error;
  }
  const { response, opaque } = network;
  if (opaque) {
    const cache = await caches.open(DB_NAME);
    event.waitUntil(cache.put(key, response.clone()).catch(() => {}));
  } else if (response.ok) {
    event.waitUntil(keep(key, kind, response.clone()).catch(() => {}));
  }
  return response;
}

const loading = new Map();  // object key -> promise of its kept row, while the whole object is fetched

/** The kept row of a whole object: the one in IndexedDB, else fetched (once for concurrent asks)
 * and kept; null when it can be neither (offline and never kept, no CORS, an error answer). */
async function wholeObject(url, key) {
  const row = await keptRow(key);
  if (row) return row;
  if (!loading.has(key)) {
    const fetched = fetch(url, { mode: "cors", credentials: "omit" })
      .then((response) => (response.ok ? keep(key, "object", response) : null))
      .catch(() => null)
      .finally(() => loading.delete(key));
    loading.set(key, fetched);
  }
  return loading.get(key);
}

/** The answer to a Range header ("bytes=a-b", "bytes=a-", "bytes=-n") from a whole kept object:
 * 206 with that slice, 416 past its end, and the whole object (200) for a header it ignores
 * (several ranges, b < a), as HTTP servers do. */
function partial(row, range) {
  const size = row.body.size;
  const match = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
  const headers = new Headers(row.headers);
  headers.set("Accept-Ranges", "bytes");
  if (!match || (!match[1] && !match[2]) || (match[1] && match[2] && Number(match[2]) < Number(match[1]))) {
    headers.set("Content-Length", String(size));
    return new Response(row.body, { status: 200, statusText: "OK", headers });
  }
  const start = match[1] ? Number(match[1]) : Math.max(0, size - Number(match[2]));
  const end = match[1] && match[2] ? Math.min(Number(match[2]), size - 1) : size - 1;
  if (start >= size || end < start) {
    return new Response(null, { status: 416, statusText: "Range Not Satisfiable",
                                headers: { "Content-Range": `bytes */${size}` } });
  }
  headers.set("Content-Range", `bytes ${start}-${end}/${size}`);
  headers.set("Content-Length", String(end - start + 1));
  return new Response(row.body.slice(start, end + 1), { status: 206, statusText: "Partial Content", headers });
}

async function answerRange(request, key) {
  const row = await wholeObject(request.url, key);
  return row ? partial(row, request.headers.get("Range")) : fetch(request);
}

self.addEventListener("fetch", (event) => {
  const found = keyOf(event.request);
  if (!found) return;
  event.respondWith(event.request.headers.has("Range")
    ? answerRange(event.request, found.key) : answer(event, found.key, found.kind));
});

/** The page asks what is kept: {type: "stored"} -> {page: n, static: n, history: n, frames: n, ...}. */
self.addEventListener("message", (event) => {
  if (!event.data || event.data.type !== "stored") return;
  event.waitUntil((async () => {
    const rows = await transaction("readonly", (store) => store.getAll()).catch(() => []);
    const counts = {};
    for (const row of rows) counts[row.kind] = (counts[row.kind] || 0) + 1;
    event.ports[0].postMessage(counts);
  })());
});
