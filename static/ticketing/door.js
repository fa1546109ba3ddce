/* The door: scan or type a ticket and see a clear answer; keeps working with no network.
 *
 * Online, the server judges each scan (POST /door/api/lists/<id>/scan) and its answer is shown.
 * When the network is gone, or gives no answer within SCAN_TIMEOUT_MS, the phone judges alone
 * from what it keeps in IndexedDB (the event's public key, every ticket of the session and where
 * each stands), with the rules of ticketing.services._fixed_result and _judge; the scan is queued
 * under an id the phone made and uploaded when the network returns (POST /door/api/sync). The
 * server may already have a queued scan (an answer that came too late): re-sending an id is
 * harmless, and a scan leaves the queue only once the server has answered for its id.
 *
 * IndexedDB "door": meta (device token and name, chosen list, clock offset), lists (summary,
 * public key, counts, manifest cursor), tickets (one row per list and ticket), queue (scans to upload).
 */
(() => {
  "use strict";

  const body = document.body;
  const API = body.dataset.api || "/door/api";
  const SCAN_TIMEOUT_MS = 2500; // longer than this and the door falls back to judging alone
  const REQUEST_TIMEOUT_MS = 15000;
  const REFRESH_MS = 20000;
  const SAME_CODE_MS = 3000; // the camera ignores a code it saw this recently
  const SYNC_BATCH = 5000; // the server's MAX_SYNC_BATCH
  const PAYLOAD_PREFIX = "B1";

  const RESULTS = {
    valid: { word: "Valid", tone: "ok", buzz: [80] },
    exited: { word: "Left", tone: "info", buzz: [80] },
    already_in: { word: "Already in", tone: "warn", buzz: [200, 100, 200] },
    revoked: { word: "Revoked", tone: "bad", buzz: [400] },
    wrong_session: { word: "Wrong session", tone: "bad", buzz: [400] },
    not_on_list: { word: "Not on this list", tone: "bad", buzz: [400] },
    unpaid: { word: "Not paid", tone: "unpaid", buzz: [200, 100, 200] },
    not_yet_valid: { word: "Not yet valid", tone: "bad", buzz: [400] },
    not_inside: { word: "Not checked in", tone: "warn", buzz: [200, 100, 200] },
    invalid: { word: "Not valid", tone: "bad", buzz: [400] },
  };

  // --- small helpers ------------------------------------------------------------------------------

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

  // --- IndexedDB ----------------------------------------------------------------------------------

  let db = null;

  function request(req) {
    return new Promise((resolve, reject) => {
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }

  function finished(tx) {
    return new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("IndexedDB transaction aborted"));
    });
  }

  function openDb() {
    const req = indexedDB.open("door", 1);
    req.onupgradeneeded = () => {
      const d = req.result;
      d.createObjectStore("meta");
      d.createObjectStore("lists", { keyPath: "id" });
      const tickets = d.createObjectStore("tickets", { keyPath: "key" });
      tickets.createIndex("by_code", ["list_id", "code"]);
      tickets.createIndex("by_list", "list_id");
      d.createObjectStore("queue", { keyPath: "id" });
    };
    return request(req);
  }

  const store = {
    get: (name, key) => request(db.transaction(name).objectStore(name).get(key)),
    all: (name) => request(db.transaction(name).objectStore(name).getAll()),
    count: (name) => request(db.transaction(name).objectStore(name).count()),
    async put(name, value, key) {
      const tx = db.transaction(name, "readwrite");
      tx.objectStore(name).put(value, key);
      await finished(tx);
    },
    async delete(name, key) {
      const tx = db.transaction(name, "readwrite");
      tx.objectStore(name).delete(key);
      await finished(tx);
    },
  };

  const ticketKey = (listId, ticketId) => `${listId}:${ticketId}`;

  // --- state --------------------------------------------------------------------------------------

  const state = {
    device: null, // {token, name, id, user}
    list: null, // the chosen list's record from IndexedDB
    offset: 0, // server clock minus this phone's clock, in ms
    networkDown: false, // the last request failed although the browser thinks it is online
    syncing: null, // the running sync, if any
    refreshing: null,
    scanChain: Promise.resolve(), // scans are judged one after another
    lastAnswer: null,
    camera: null,
    probe: null, // a retry of the network after a failure
    inflight: new Set(), // AbortControllers of requests under way
    refreshAgain: false, // a refresh was asked for while one was running
    syncNote: "", // what the last upload did
  };

  const serverNow = () => Date.now() + state.offset;
  const isOnline = () => navigator.onLine && !state.networkDown;

  // --- the API ------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  class NetworkError extends Error {}

  function networkFailed() {
    // Until a request gets through, scans are judged here at once instead of waiting for the
    // network each time; try again soon rather than at the next regular refresh.
    state.networkDown = true;
    renderNetwork();
    clearTimeout(state.probe);
    state.probe = setTimeout(syncSoon, 5000);
  }

  async function api(path, { method = "GET", data, timeout = REQUEST_TIMEOUT_MS, session = false } = {}) {
    const headers = { Accept: "application/json" };
    if (data !== undefined) headers["Content-Type"] = "application/json";
    if (session) headers["X-CSRFToken"] = csrfToken();
    else if (state.device) headers.Authorization = `Bearer ${state.device.token}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeout);
    state.inflight.add(controller);
    const sentAt = Date.now();
    let response;
    try {
      response = await fetch(API + path, {
        method,
        headers,
        body: data === undefined ? undefined : JSON.stringify(data),
        credentials: "same-origin",
        cache: "no-store",
        signal: controller.signal,
      });
    } catch (error) {
      networkFailed();
      throw new NetworkError(error.name === "AbortError" ? "The network is too slow." : "No network.");
    } finally {
      clearTimeout(timer);
      state.inflight.delete(controller);
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch (error) {
      payload = null;
    }
    if (response.status >= 500) {
      networkFailed();
      throw new NetworkError((payload && payload.error) || `The server is not answering (${response.status}).`);
    }
    if (payload === null) throw new ApiError(response.status, `Unexpected answer (${response.status}). Reload the page.`);
    if (state.networkDown) {
      state.networkDown = false;
      renderNetwork();
    }
    const roundTrip = Date.now() - sentAt;
    if (payload.server_time && roundTrip < 2000) {
      // The server's clock at the middle of the round trip (a slow one says little about it):
      // offline scans are stamped in the server's time, so doors with wrong clocks still agree.
      state.offset = Date.parse(payload.server_time) - (sentAt + roundTrip / 2);
      store.put("meta", state.offset, "offset").catch(() => {});
    }
    if (response.status === 401 && !session) {
      await deviceSignedOut(payload.error);
      throw new ApiError(401, payload.error || "Sign in again.");
    }
    if (!response.ok) throw new ApiError(response.status, payload.error || `Error ${response.status}`);
    return payload;
  }

  // --- screens ------------------------------------------------------------------------------------

  function show(screen) {
    for (const id of ["setup", "lists", "scanner"]) $(id).hidden = id !== screen;
    if (screen !== "scanner") stopCamera();
  }

  function notice(text, tone = "") {
    const box = $("notice");
    box.textContent = text || "";
    box.className = `notice${tone ? ` notice-${tone}` : ""}`;
    box.hidden = !text;
  }

  async function renderQueue() {
    const waiting = await store.count("queue");
    $("queue-count").textContent = String(waiting);
    $("queue-label").textContent = waiting === 1 ? "scan to upload" : "scans to upload";
    $("queue-counter").classList.toggle("has-queue", waiting > 0);
    renderNetwork(waiting);
    return waiting;
  }

  function renderNetwork(waiting) {
    const pill = $("net-state");
    const online = isOnline();
    pill.textContent = online ? "Online" : "Offline";
    pill.className = `pill ${online ? "pill-ok" : "pill-off"}`;
    body.classList.toggle("is-offline", !online);
    if (waiting !== undefined) pill.dataset.waiting = String(waiting);
  }

  function renderDevice() {
    $("device-label").textContent = state.device ? state.device.name : "";
  }

  // --- 1. naming the phone ------------------------------------------------------------------------

  async function deviceSignedOut(message) {
    // The device was switched off (or its user lost door access). Queued scans stay on the phone.
    state.device = null;
    await store.delete("meta", "device");
    renderDevice();
    const waiting = await store.count("queue");
    notice(
      (message || "This phone was signed out of the door. Sign in again to carry on.") +
        (waiting ? ` The ${plural(waiting, "scan", "scans")} on this phone will upload after that.` : ""),
      "bad",
    );
    show("setup");
    $("device-name").focus();
  }

  async function registerDevice(event) {
    event.preventDefault();
    const name = $("device-name").value.trim();
    if (!name) {
      notice("Give this phone a name, e.g. the door it is at.", "bad");
      $("device-name").focus();
      return;
    }
    const button = event.submitter || $("setup-form").querySelector("button");
    button.disabled = true;
    try {
      const answer = await api("/devices", { method: "POST", data: { name }, session: true });
      state.device = { token: answer.token, ...answer.device };
      await store.put("meta", state.device, "device");
      notice("");
      renderDevice();
      await showLists();
      syncSoon();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        window.location.assign(body.dataset.login); // the signed-in session has ended
        return;
      }
      notice(
        error instanceof NetworkError ? "Naming the phone needs the network once. Try again when online." : error.message,
        "bad",
      );
    } finally {
      button.disabled = false;
    }
  }

  // --- 2. picking a session -----------------------------------------------------------------------

  function renderListPicker(lists) {
    const picker = $("list-picker");
    picker.replaceChildren();
    for (const list of lists) {
      const counts = list.counts || { admitted: 0, expected: 0 };
      const button = el(
        "button",
        { type: "button", class: "list-choice", "data-list": String(list.id) },
        el("span", { class: "list-offering", text: list.offering }),
        el("span", { class: "list-when", text: list.starts_local }),
        el("span", { class: "list-name", text: `${list.name} · ${list.location}` }),
        el("span", { class: "list-counts", text: `${counts.admitted} / ${counts.expected} admitted` }),
      );
      button.addEventListener("click", () => openList(list.id));
      picker.append(el("li", {}, button));
    }
  }

  async function showLists() {
    show("lists");
    state.list = null;
    await store.delete("meta", "list");
    const cached = (await store.all("lists")).sort((a, b) => a.starts_at.localeCompare(b.starts_at));
    renderListPicker(cached);
    $("lists-state").textContent = cached.length ? "" : "Loading sessions…";
    await loadLists();
  }

  async function loadLists() {
    try {
      const answer = await api("/lists");
      const tx = db.transaction(["lists"], "readwrite");
      const lists = tx.objectStore("lists");
      const fresh = [];
      for (const summary of answer.lists) {
        const old = (await request(lists.get(summary.id))) || {};
        const record = { ...old, ...summary };
        lists.put(record);
        fresh.push(record);
      }
      await finished(tx);
      $("lists-state").textContent = fresh.length
        ? ""
        : "No sessions from yesterday to two weeks ahead have a check-in list.";
      if (!$("lists").hidden) renderListPicker(fresh);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      const cached = await store.count("lists");
      $("lists-state").textContent = cached
        ? "Offline: showing the sessions this phone knows."
        : "Offline, and this phone has no sessions yet. It needs the network once.";
    }
  }

  // --- 3. the scanner -----------------------------------------------------------------------------

  async function openList(listId) {
    const list = await store.get("lists", listId);
    if (!list) return showLists();
    state.list = list;
    await store.put("meta", listId, "list");
    show("scanner");
    renderList();
    showAnswer(null);
    await renderQueue();
    // No automatic focus on the code field: on a phone it would open the keyboard over the camera.
    if (!list.cursor) $("sync-state").textContent = "Loading the ticket list…";
    await refresh();
  }

  function direction() {
    if (!state.list || !state.list.count_exits) return "entry";
    return document.querySelector("input[name=direction]:checked").value;
  }

  function renderList() {
    const list = state.list;
    if (!list) return;
    $("session-title").textContent = list.offering;
    $("session-sub").textContent = `${list.starts_local} · ${list.name}`;
    $("direction").hidden = !list.count_exits;
    renderCounts(list.counts);
    renderSyncState();
  }

  function renderCounts(counts) {
    if (!counts) return;
    $("admitted").textContent = String(counts.admitted);
    $("expected").textContent = String(counts.expected);
    $("inside").textContent = String(counts.inside);
    $("inside-counter").hidden = !(state.list && state.list.count_exits);
    const toggle = $("conflicts-toggle");
    toggle.hidden = !counts.conflicts;
    toggle.textContent = plural(counts.conflicts || 0, "conflict", "conflicts");
    if (!counts.conflicts) {
      $("conflicts").hidden = true;
      toggle.setAttribute("aria-expanded", "false");
    }
  }

  function renderSyncState(extra = "") {
    const list = state.list;
    const parts = [];
    if (list && !list.cursor) parts.push("This phone has no ticket list for this session yet; it needs the network once");
    else if (list && list.fetched_at) parts.push(`List updated ${clock(list.fetched_at)}`);
    if (state.syncNote) parts.push(state.syncNote);
    if (extra) parts.push(extra);
    $("sync-state").textContent = parts.join(". ");
  }

  /** Counters from the tickets this phone holds: they include scans the server has not seen yet. */
  async function localCounts(list, conflicts) {
    const rows = await request(db.transaction("tickets").objectStore("tickets").index("by_list").getAll(list.id));
    const mine = rows.filter((t) => t.on_list && t.status === "valid");
    const admitted = mine.filter((t) => t.admitted);
    return {
      admitted: admitted.length,
      inside: list.count_exits ? admitted.filter((t) => t.inside).length : admitted.length,
      expected: mine.length,
      conflicts: conflicts === undefined ? (list.counts && list.counts.conflicts) || 0 : conflicts,
    };
  }

  /** Show counters: the phone's own once it has the ticket list, with the server's conflict count. */
  async function updateCounts(list, serverCounts) {
    if (!list.cursor) return saveCounts(serverCounts);
    return saveCounts(await localCounts(list, serverCounts ? serverCounts.conflicts : undefined));
  }

  async function saveCounts(counts) {
    if (!state.list || !counts) return;
    state.list.counts = counts;
    const record = await store.get("lists", state.list.id);
    if (record) await store.put("lists", { ...record, counts });
    renderCounts(counts);
  }

  // --- the ticket list (manifest) -----------------------------------------------------------------

  async function loadManifest(list) {
    const since = list.cursor ? `?modified_since=${encodeURIComponent(list.cursor)}` : "";
    const manifest = await api(`/lists/${list.id}/manifest${since}`);
    const tx = db.transaction(["lists", "tickets", "queue"], "readwrite");
    const tickets = tx.objectStore("tickets");
    // Scans still waiting to upload were judged here; until the server has them, its idea of
    // those tickets is older than the phone's, so their check-in state is kept.
    const pending = new Set(
      (await request(tx.objectStore("queue").getAll())).filter((s) => s.list_id === list.id).map((s) => s.ticket_id),
    );
    if (manifest.full) {
      const keys = await request(tickets.index("by_list").getAllKeys(list.id));
      const current = new Set(manifest.tickets.map((t) => ticketKey(list.id, t.id)));
      for (const key of keys) if (!current.has(key)) tickets.delete(key);
    }
    for (const row of manifest.tickets) {
      const key = ticketKey(list.id, row.id);
      let merged = { ...row, key, list_id: list.id };
      if (pending.has(row.id)) {
        const old = await request(tickets.get(key));
        if (old) {
          const { admitted, inside, last_entry_at, last_entry_door } = old;
          merged = { ...merged, admitted, inside, last_entry_at, last_entry_door };
        }
      }
      tickets.put(merged);
    }
    const record = {
      ...((await request(tx.objectStore("lists").get(list.id))) || list),
      ...manifest.list,
      public_key: manifest.public_key,
      counts: manifest.counts,
      cursor: manifest.server_time,
      fetched_at: new Date().toISOString(),
    };
    tx.objectStore("lists").put(record);
    await finished(tx);
    return record;
  }

  async function loadStatus(list) {
    const status = await api(`/lists/${list.id}/status`);
    renderConflicts(status.conflicts);
    return status.counts;
  }

  function renderConflicts(conflicts) {
    const items = conflicts.map((c) => {
      const who = c.code ? `${c.name} (${c.code})` : "Unknown ticket";
      const first = c.first_at ? ` although first checked in at ${c.first_door || "another door"} ${clock(c.first_at)}` : "";
      return el("li", { text: `${who} let in at ${c.door || "a door"} ${clock(c.at)}${first}` });
    });
    $("conflict-list").replaceChildren(...items);
  }

  /** Upload the queue, then bring the chosen list, counters and conflicts up to date. */
  function refresh() {
    if (state.refreshing) {
      state.refreshAgain = true; // what it fetched may predate what prompted this one
      return state.refreshing;
    }
    state.refreshing = (async () => {
      try {
        await sync();
        const list = state.list;
        if (!list || !state.device) return;
        const record = await loadManifest(list);
        record.counts = await localCounts(record, record.counts.conflicts);
        if (state.list && state.list.id === record.id) {
          state.list = record;
          renderList();
          await updateCounts(record, await loadStatus(record));
        }
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          notice("This session's check-in list no longer exists. Pick another.", "bad");
          await showLists();
        } else if (!(error instanceof ApiError && error.status === 401)) {
          renderSyncState(isOnline() ? error.message : "Offline: checking tickets on this phone");
        }
      } finally {
        state.refreshing = null;
        await renderQueue();
        if (state.refreshAgain) {
          state.refreshAgain = false;
          if (navigator.onLine) refresh();
        }
      }
    })();
    return state.refreshing;
  }

  // --- uploading the queue ------------------------------------------------------------------------

  function sync() {
    if (!state.syncing) {
      state.syncing = (async () => {
        try {
          return await uploadQueue();
        } finally {
          state.syncing = null;
          await renderQueue();
        }
      })();
    }
    return state.syncing;
  }

  async function uploadQueue() {
    if (!state.device) return 0;
    const queued = (await store.all("queue")).sort((a, b) => a.queued_at - b.queued_at);
    if (!queued.length) return 0;
    const byList = new Map();
    for (const scan of queued) {
      if (!byList.has(scan.list_id)) byList.set(scan.list_id, []);
      byList.get(scan.list_id).push(scan);
    }
    let uploaded = 0;
    let conflicts = 0;
    let refused = "";
    for (const scans of byList.values()) {
      for (let start = 0; start < scans.length; start += SYNC_BATCH) {
        const batch = scans.slice(start, start + SYNC_BATCH);
        let answer;
        try {
          answer = await api("/sync", {
            method: "POST",
            data: {
              scans: batch.map((s) => ({
                id: s.id,
                list_id: s.list_id,
                raw: s.raw,
                direction: s.direction,
                scanned_at: s.scanned_at,
                shown_result: s.shown_result,
                override: s.override,
              })),
            },
          });
        } catch (error) {
          if (error instanceof ApiError && error.status === 400) {
            refused = error.message; // e.g. a list deleted since: keep those scans, upload the rest
            continue;
          }
          throw error;
        }
        const tx = db.transaction("queue", "readwrite");
        for (const result of answer.results) tx.objectStore("queue").delete(result.id);
        await finished(tx);
        for (const result of answer.results) uploadedShown(result);
        uploaded += answer.results.length;
        conflicts += answer.results.filter((r) => r.conflict).length;
      }
    }
    let text = uploaded ? `Uploaded ${plural(uploaded, "scan", "scans")}` : "";
    if (conflicts) text += ` (${plural(conflicts, "conflict", "conflicts")})`;
    if (refused) text += `${text ? ". " : ""}Not uploaded: ${refused}`;
    state.syncNote = text;
    if (state.list) renderSyncState();
    return uploaded;
  }

  function uploadedShown(result) {
    // The answer on screen was judged offline and has now reached the server: say so, and say
    // what the server made of it when that differs (another door was first, the code was revoked…).
    const shown = state.lastAnswer;
    if (!shown || shown.id !== result.id || shown.online) return;
    shown.uploaded = true;
    const line = $("answer-source");
    if (!line) return;
    let text = line.textContent.replace("it will upload", "uploaded");
    if (result.result !== shown.result) text += `. The server says: ${result.result_text}`;
    line.textContent = text;
  }

  function syncSoon() {
    if (state.device && navigator.onLine) refresh();
  }

  // --- judging a scan on the phone (mirrors ticketing.services._fixed_result and _judge) ----------

  function unbase64(text, urlsafe) {
    let t = urlsafe ? text.replace(/-/g, "+").replace(/_/g, "/") : text;
    t += "=".repeat((4 - (t.length % 4)) % 4);
    const binary = atob(t);
    return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
  }

  /** {ticketId, sessionId, message, signature} of a payload shaped like ours, else null. */
  function readPayload(text) {
    const parts = text.split(".");
    if (parts.length !== 3 || parts[0] !== PAYLOAD_PREFIX) return null;
    try {
      const message = unbase64(parts[1], true);
      const signature = unbase64(parts[2], true);
      if (message.length !== 9 || signature.length !== 64 || message[0] !== 1) return null;
      const view = new DataView(message.buffer);
      return { ticketId: view.getUint32(1), sessionId: view.getUint32(5), message, signature };
    } catch (error) {
      return null;
    }
  }

  function genuine(payload, publicKey) {
    if (!publicKey || !window.nacl) return false;
    try {
      return window.nacl.sign.detached.verify(payload.message, payload.signature, unbase64(publicKey, false));
    } catch (error) {
      return false;
    }
  }

  async function otherSession(sessionId) {
    const known = (await store.all("lists")).find((l) => l.session_id === sessionId);
    return known ? { offering: known.offering, starts_at: known.starts_at } : null;
  }

  async function findTicket(list, text) {
    if (text.startsWith(`${PAYLOAD_PREFIX}.`)) {
      const payload = readPayload(text);
      if (!payload) return { result: "invalid", reason: "This is not one of our ticket codes." };
      if (!genuine(payload, list.public_key)) {
        return {
          result: "invalid",
          reason:
            payload.sessionId === list.session_id
              ? "The code is not genuine: it was altered or forged."
              : "Not a ticket for this event, or the code was altered.",
        };
      }
      if (payload.sessionId !== list.session_id) {
        return { result: "wrong_session", wrong_session: await otherSession(payload.sessionId) };
      }
      const ticket = await store.get("tickets", ticketKey(list.id, payload.ticketId));
      return ticket
        ? { ticket }
        : { result: "invalid", reason: "Not in this phone's ticket list. Update the list when back online." };
    }
    const code = normaliseCode(text);
    if (code.length >= 6 && code.length <= 16) {
      const ticket = await request(
        db.transaction("tickets").objectStore("tickets").index("by_code").get([list.id, code]),
      );
      if (ticket) return { ticket };
    }
    return { result: "invalid", reason: "No ticket with this code for this session." };
  }

  /** The answer the phone gives alone, and the ticket's new state (saved before it returns). */
  async function judgeHere(list, raw, { dir, override, at }) {
    const found = await findTicket(list, raw.trim());
    if (!found.ticket) return found;
    const ticket = found.ticket;
    const shown = { ticket, first_entry: null };
    if (ticket.status === "revoked") return { ...shown, result: "revoked", revoked_at: ticket.revoked_at };
    if (!ticket.on_list) return { ...shown, result: "not_on_list" };
    if (dir === "entry") {
      if (at < Date.parse(list.opens_at)) return { ...shown, result: "not_yet_valid", opens_at: list.opens_at };
      if (ticket.unpaid && !override) return { ...shown, result: "unpaid" };
    }
    let result;
    const updated = { ...ticket };
    if (dir === "entry") {
      const allowed = !ticket.admitted || (list.allow_reentry && (!list.count_exits || !ticket.inside));
      result = allowed ? "valid" : "already_in";
      if (allowed) {
        Object.assign(updated, {
          admitted: true,
          inside: true,
          last_entry_at: new Date(at).toISOString(),
          last_entry_door: state.device ? state.device.name : "",
        });
      } else {
        shown.first_entry = { at: ticket.last_entry_at, door: ticket.last_entry_door };
      }
    } else {
      result = ticket.inside ? "exited" : "not_inside";
      if (ticket.inside) updated.inside = false;
    }
    if (updated.admitted !== ticket.admitted || updated.inside !== ticket.inside) {
      await store.put("tickets", updated);
      await updateCounts(state.list || list);
    }
    return { ...shown, result };
  }

  /** Keep the phone's copy of a ticket in step with what the server just said about it. */
  async function learn(list, answer) {
    if (!answer.ticket) return;
    const key = ticketKey(list.id, answer.ticket.id);
    const old = await store.get("tickets", key);
    if (!old) return; // the next manifest brings it
    const updated = { ...old, status: answer.ticket.status };
    if (answer.result === "valid") {
      Object.assign(updated, {
        admitted: true,
        inside: true,
        last_entry_at: answer.scanned_at,
        last_entry_door: state.device ? state.device.name : "",
      });
    } else if (answer.result === "exited") {
      updated.inside = false;
    } else if (answer.result === "already_in") {
      updated.admitted = true; // another door let them in since the last update
      if (answer.first_entry) {
        updated.last_entry_at = answer.first_entry.at;
        updated.last_entry_door = answer.first_entry.door;
      }
    }
    await store.put("tickets", updated);
  }

  // --- a scan -------------------------------------------------------------------------------------

  function check(raw, { override = false } = {}) {
    const text = raw.trim();
    if (!text || !state.list) return Promise.resolve();
    const job = state.scanChain.then(() => checkNow(text, override));
    state.scanChain = job.catch(() => {});
    return job;
  }

  async function checkNow(raw, override) {
    const list = state.list;
    const dir = direction();
    const id = newId();
    showPending(raw);
    if (isOnline() && state.device) {
      try {
        const answer = await api(`/lists/${list.id}/scan`, {
          method: "POST",
          data: { id, raw, direction: dir, override },
          timeout: SCAN_TIMEOUT_MS,
        });
        await learn(list, answer);
        await updateCounts(state.list || list, answer.counts);
        showAnswer({ ...answer, raw, online: true });
        if ((await store.count("queue")) > 0) syncSoon();
        return;
      } catch (error) {
        if (error instanceof ApiError) {
          if (error.status === 401) return; // the phone was signed out: nothing is let in
          if (error.status === 404) {
            notice("This session's check-in list no longer exists. Pick another.", "bad");
            return showLists();
          }
          return showAnswer({ result: "invalid", reason: error.message, raw, online: true, notRecorded: true });
        }
        // No answer in time: judge here. The server may have recorded it after all; the id says so.
      }
    }
    const at = serverNow();
    const answer = await judgeHere(list, raw, { dir, override, at });
    await store.put("queue", {
      id,
      list_id: list.id,
      ticket_id: answer.ticket ? answer.ticket.id : null,
      raw,
      direction: dir,
      scanned_at: new Date(at).toISOString(),
      shown_result: answer.result,
      override,
      queued_at: Date.now(),
    });
    await renderQueue();
    showAnswer({ ...answer, raw, id, online: false });
  }

  function showPending(raw) {
    const box = $("answer");
    box.className = "answer tone-busy";
    box.dataset.result = "pending";
    box.setAttribute("aria-busy", "true");
    box.replaceChildren(el("p", { class: "answer-word", text: "Checking…" }), el("p", { class: "answer-detail", text: raw.slice(0, 40) }));
  }

  function ticketLine(ticket) {
    const parts = [ticket.type, ticket.zone, ticket.seat ? `Seat ${ticket.seat}` : ""].filter(Boolean);
    return parts.join(" · ");
  }

  function explanation(answer) {
    switch (answer.result) {
      case "valid":
        return answer.first_entry ? `Back in (first in at ${clock(answer.first_entry.at)}, ${answer.first_entry.door})` : "";
      case "already_in":
        return answer.first_entry && answer.first_entry.at
          ? `First in at ${clock(answer.first_entry.at)}${answer.first_entry.door ? `, ${answer.first_entry.door}` : ""}`
          : "This ticket was already checked in.";
      case "revoked":
        return "This code was cancelled or replaced. Ask for the current ticket.";
      case "wrong_session":
        return answer.wrong_session
          ? `This ticket is for ${answer.wrong_session.offering}, ${dayAndClock(answer.wrong_session.starts_at)}.`
          : "This ticket is for another session.";
      case "not_on_list":
        return "Not valid at this entrance.";
      case "not_yet_valid": {
        const opens = answer.opens_at || (state.list && state.list.opens_at);
        return opens ? `Check-in opens at ${clock(opens)}.` : "Check-in has not opened yet.";
      }
      case "unpaid":
        return "This booking is not fully paid.";
      case "exited":
        return "Scanned out.";
      case "not_inside":
        return "This ticket was not checked in, so it cannot go out.";
      default:
        return answer.reason || answer.result_text || "Not a valid ticket for this session.";
    }
  }

  function showAnswer(answer) {
    const box = $("answer");
    const override = $("override");
    box.removeAttribute("aria-busy");
    state.lastAnswer = answer;
    override.hidden = true;
    if (!answer) {
      box.className = "answer tone-idle";
      box.dataset.result = "";
      box.replaceChildren(
        el("p", { class: "answer-word", text: "Ready" }),
        el("p", { class: "answer-detail", text: "Scan a ticket or type its code." }),
      );
      return;
    }
    const meta = RESULTS[answer.result] || RESULTS.invalid;
    box.className = `answer tone-${meta.tone}`;
    box.dataset.result = answer.notRecorded ? "error" : answer.result;
    const ticket = answer.ticket;
    const note = explanation(answer);
    let source = answer.online ? "Checked with the server" : "Checked on this phone (offline); it will upload";
    if (answer.notRecorded) source = "Not recorded";
    const lines = [
      el("p", { class: "answer-word", text: answer.notRecorded ? "Not checked" : meta.word }),
      ticket ? el("p", { class: "answer-name", text: ticket.name || ticket.code }) : null,
      ticket && ticketLine(ticket) ? el("p", { class: "answer-detail", text: ticketLine(ticket) }) : null,
      note ? el("p", { class: "answer-note", text: note }) : null,
      el("p", { class: "answer-source", id: "answer-source", text: ticket ? `${ticket.code} · ${source}` : source }),
    ];
    box.replaceChildren(...lines.filter(Boolean));
    if (answer.result === "unpaid") {
      override.hidden = false;
      override.dataset.raw = answer.raw;
    }
    if (navigator.vibrate && meta.buzz) {
      try {
        navigator.vibrate(meta.buzz);
      } catch (error) {
        /* vibration is a nicety */
      }
    }
  }

  // --- the camera ---------------------------------------------------------------------------------

  async function qrDetector() {
    if (!("BarcodeDetector" in window)) return null;
    try {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      if (!formats.includes("qr_code")) return null;
      return new window.BarcodeDetector({ formats: ["qr_code"] });
    } catch (error) {
      return null;
    }
  }

  /** The text of a QR code in an ImageData, or null (jsQR, for browsers without BarcodeDetector). */
  function decodeImageData(image) {
    if (!window.jsQR) return null;
    const code = window.jsQR(image.data, image.width, image.height, { inversionAttempts: "attemptBoth" });
    return code ? code.data : null;
  }

  async function startCamera() {
    const toggle = $("camera-toggle");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      notice("This browser cannot use the camera here. Type the codes instead.", "bad");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
        audio: false,
      });
    } catch (error) {
      notice(
        error.name === "NotAllowedError"
          ? "The camera is blocked. Allow it in the browser's site settings, or type the codes."
          : "No camera could be started. Type the codes instead.",
        "bad",
      );
      return;
    }
    const video = $("camera-video");
    video.srcObject = stream;
    $("camera-view").hidden = false;
    await video.play().catch(() => {});
    const detector = await qrDetector();
    const camera = {
      stream,
      detector,
      canvas: document.createElement("canvas"),
      timer: null,
      lastText: "",
      lastSeen: 0,
      stopped: false,
    };
    state.camera = camera;
    toggle.textContent = "Stop camera";
    toggle.setAttribute("aria-pressed", "true");
    $("camera-hint").textContent = detector ? "Point at the QR code" : "Point at the QR code (hold steady)";
    notice("");
    const look = async () => {
      if (camera.stopped) return;
      try {
        const text = await readFrame(camera, video);
        if (text) seen(camera, text);
      } catch (error) {
        /* a frame that could not be read: try the next one */
      }
      if (!camera.stopped) camera.timer = setTimeout(look, camera.detector ? 100 : 150);
    };
    look();
  }

  async function readFrame(camera, video) {
    if (video.readyState < 2 || !video.videoWidth) return null;
    if (camera.detector) {
      const codes = await camera.detector.detect(video);
      return codes.length ? codes[0].rawValue : null;
    }
    // jsQR reads pixels: scale the frame to at most 800 px wide, enough for a phone-screen code.
    const scale = Math.min(1, 800 / video.videoWidth);
    const width = Math.round(video.videoWidth * scale);
    const height = Math.round(video.videoHeight * scale);
    const canvas = camera.canvas;
    if (canvas.width !== width) canvas.width = width;
    if (canvas.height !== height) canvas.height = height;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(video, 0, 0, width, height);
    return decodeImageData(context.getImageData(0, 0, width, height));
  }

  function seen(camera, text) {
    // The same code stays in view for a while: it counts once, and again only after it has been
    // out of sight for SAME_CODE_MS (someone coming back round).
    const now = Date.now();
    const repeat = text === camera.lastText && now - camera.lastSeen < SAME_CODE_MS;
    camera.lastText = text;
    camera.lastSeen = now;
    if (!repeat) check(text);
  }

  function stopCamera() {
    const camera = state.camera;
    if (!camera) return;
    camera.stopped = true;
    clearTimeout(camera.timer);
    for (const track of camera.stream.getTracks()) track.stop();
    const video = $("camera-video");
    video.srcObject = null;
    $("camera-view").hidden = true;
    state.camera = null;
    const toggle = $("camera-toggle");
    toggle.textContent = "Start camera";
    toggle.setAttribute("aria-pressed", "false");
  }

  // --- signing out --------------------------------------------------------------------------------

  async function signOut(event) {
    event.preventDefault();
    const form = event.target;
    const token = form.querySelector("input[name=csrfmiddlewaretoken]");
    if (token) token.value = csrfToken();
    try {
      // Last chance to upload with this phone's token; whatever is left stays queued.
      await Promise.race([sync(), new Promise((resolve) => setTimeout(resolve, 3000))]);
    } catch (error) {
      /* the queue stays on the phone */
    }
    await store.delete("meta", "device");
    await store.delete("meta", "list");
    if (window.caches) {
      // The door page must not open from the cache once signed out.
      for (const name of await caches.keys()) {
        if (name.startsWith("door-")) await (await caches.open(name)).delete("/door/");
      }
    }
    form.submit();
  }

  // --- wiring -------------------------------------------------------------------------------------

  function registerServiceWorker() {
    if (!("serviceWorker" in navigator)) return;
    navigator.serviceWorker
      .register(body.dataset.serviceWorker, { scope: "/door/" })
      .then(() => navigator.serviceWorker.ready)
      .then((registration) => {
        // Whatever this page loaded (static names are hashed in production) is what opens offline.
        const urls = [...document.querySelectorAll("script[src], link[href]")]
          .map((node) => new URL(node.src || node.href, location.href))
          .filter((url) => url.origin === location.origin)
          .map((url) => url.pathname + url.search);
        if (registration.active) registration.active.postMessage({ type: "cache", urls });
      })
      .catch((error) => console.warn("The door page will not open offline:", error));
  }

  function wire() {
    $("setup-form").addEventListener("submit", registerDevice);
    $("lists-refresh").addEventListener("click", () => loadLists());
    $("change-session").addEventListener("click", () => showLists());
    $("refresh").addEventListener("click", () => refresh());
    $("code-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("code-input");
      const raw = input.value;
      if (!raw.trim()) {
        showAnswer({ result: "invalid", reason: "Type the ticket's code first.", notRecorded: true, online: true });
        input.focus();
        return;
      }
      input.value = "";
      input.focus();
      check(raw);
    });
    $("override").addEventListener("click", (event) => {
      const raw = event.currentTarget.dataset.raw;
      if (raw) check(raw, { override: true });
    });
    $("camera-toggle").addEventListener("click", () => (state.camera ? stopCamera() : startCamera()));
    $("conflicts-toggle").addEventListener("click", (event) => {
      const open = $("conflicts").hidden;
      $("conflicts").hidden = !open;
      event.currentTarget.setAttribute("aria-expanded", String(open));
    });
    $("signout-form").addEventListener("submit", signOut);
    window.addEventListener("online", () => {
      state.networkDown = false;
      renderQueue();
      syncSoon();
    });
    window.addEventListener("offline", () => {
      // A request under way when the network went may otherwise hang until its timeout, holding up
      // the scan waiting for it and the upload the next "online" starts.
      for (const controller of state.inflight) controller.abort();
      renderQueue();
      if (state.list) renderSyncState("Offline: checking tickets on this phone");
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") syncSoon();
      else stopCamera();
    });
    setInterval(() => {
      if (document.visibilityState !== "visible" || !state.device) return;
      if (state.list) refresh();
      else if (!$("lists").hidden) loadLists();
    }, REFRESH_MS);
  }

  async function start() {
    registerServiceWorker();
    db = await openDb();
    wire();
    state.offset = (await store.get("meta", "offset")) || 0;
    state.device = (await store.get("meta", "device")) || null;
    renderDevice();
    await renderQueue();
    if (!state.device) {
      show("setup");
      $("device-name").focus();
      return;
    }
    const listId = await store.get("meta", "list");
    if (listId && (await store.get("lists", listId))) await openList(listId);
    else await showLists();
  }

  // For tests and the curious: the decoder the camera uses when BarcodeDetector is missing.
  window.door = { decodeImageData };

  start().catch((error) => {
    notice(`The door page could not start: ${error.message}`, "bad");
    throw error;
  });
})();
