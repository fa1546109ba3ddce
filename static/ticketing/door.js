/* The door: scan or type a ticket and see a clear answer; keeps working with no network.
 *
 * Online, the server judges each scan (POST /door/api/lists/<id>/scan) and its answer is shown.
 * When the network is gone, or gives no answer within SCAN_TIMEOUT_MS, the phone judges alone
 * from what it keeps in IndexedDB (the event's public key, every ticket of the session and where
 * each stands), with the rules of ticketing.services.scans; the scan is queued under an id the
 * phone made and uploaded when the network returns (POST /door/api/sync). The server may already
 * have a queued scan (an answer that came too late): re-sending an id is harmless, and a scan
 * leaves the queue only once the server has answered for its id.
 *
 * This file is the app: its screens, the scan flow, the ticket list and the upload. Loaded before
 * it, each with one job: door-util.js (DOM and time helpers), door-store.js (what the phone keeps
 * in IndexedDB), door-api.js (the API client), door-judge.js (judging a scan offline),
 * door-answer.js (showing an answer), door-camera.js (the camera as a QR scanner).
 */
(() => {
  "use strict";

  const { $, el, newId, clock, plural, csrfToken } = window.DoorUtil;
  const { store } = window.DoorStore;
  const { ApiError, NetworkError } = window.DoorApi;
  const { judgeHere, learn } = window.DoorJudge;

  const body = document.body;
  const API = body.dataset.api || "/door/api";
  const SCAN_TIMEOUT_MS = 2500; // longer than this and the door falls back to judging alone
  const REFRESH_MS = 20000;
  const SYNC_BATCH = 5000; // the server's MAX_SYNC_BATCH


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
    refreshAgain: false, // a refresh was asked for while one was running
    syncNote: "", // what the last upload did
  };

  const serverNow = () => Date.now() + state.offset;
  const doorName = () => (state.device ? state.device.name : "");
  const isOnline = () => navigator.onLine && !state.networkDown;

  // --- the API ------------------------------------------------------------------------------------

  const { api, abortAll } = window.DoorApi.client(API, {
    device: () => state.device,
    failed: networkFailed,
    answered() {
      if (state.networkDown) {
        state.networkDown = false;
        renderNetwork();
      }
    },
    clockOffset(offset) {
      // Offline scans are stamped in the server's time, so doors with wrong clocks still agree.
      state.offset = offset;
      store.put("meta", offset, "offset").catch(() => {});
    },
    signedOut: deviceSignedOut,
  });

  function networkFailed() {
    // Until a request gets through, scans are judged here at once instead of waiting for the
    // network each time; try again soon rather than at the next regular refresh.
    state.networkDown = true;
    renderNetwork();
    clearTimeout(state.probe);
    state.probe = setTimeout(syncSoon, 5000);
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
      const fresh = await store.saveLists(answer.lists);
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

  /** Show counters: the phone's own once it has the ticket list, with the server's conflict count. */
  async function updateCounts(list, serverCounts) {
    if (!list.cursor) return saveCounts(serverCounts);
    return saveCounts(await store.localCounts(list, serverCounts ? serverCounts.conflicts : undefined));
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
    return store.saveManifest(list, await api(`/lists/${list.id}/manifest${since}`));
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
        record.counts = await store.localCounts(record, record.counts.conflicts);
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
        await store.dropQueued(answer.results.map((result) => result.id));
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
        await learn(list, answer, doorName());
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
    const answer = await judgeHere(list, raw, {
      dir,
      override,
      at,
      door: doorName(),
      whenChanged: () => updateCounts(state.list || list),
    });
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
    window.DoorAnswer.pending(raw);
  }

  function showAnswer(answer) {
    state.lastAnswer = answer;
    window.DoorAnswer.show(answer, { opensAt: state.list && state.list.opens_at });
  }

  // --- the camera ---------------------------------------------------------------------------------

  async function startCamera() {
    state.camera = await window.DoorCamera.start({ onCode: (text) => check(text), notice });
  }

  function stopCamera() {
    window.DoorCamera.stop(state.camera);
    state.camera = null;
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
      abortAll();
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
    await store.open();
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
  window.door = { decodeImageData: window.DoorCamera.decodeImageData };

  start().catch((error) => {
    notice(`The door page could not start: ${error.message}`, "bad");
    throw error;
  });
})();
