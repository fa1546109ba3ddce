/* What the door phone keeps, in IndexedDB "door" (window.DoorStore).
 *
 * meta (device token and name, chosen list, clock offset), lists (summary, public key, counts,
 * manifest cursor), tickets (one row per list and ticket), queue (scans judged here, to upload).
 * Every write that touches more than one row is one IndexedDB transaction, so a phone that dies
 * halfway keeps either the old ticket list or the new one, never a mix.
 */
window.DoorStore = (() => {
  "use strict";

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

  async function open() {
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
    db = await request(req);
  }

  const ticketKey = (listId, ticketId) => `${listId}:${ticketId}`;

  const store = {
    open,
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

    ticketByCode: (listId, code) =>
      request(db.transaction("tickets").objectStore("tickets").index("by_code").get([listId, code])),

    /** Merge the server's list summaries into what the phone knows; returns the new records. */
    async saveLists(summaries) {
      const tx = db.transaction(["lists"], "readwrite");
      const lists = tx.objectStore("lists");
      const fresh = [];
      for (const summary of summaries) {
        const old = (await request(lists.get(summary.id))) || {};
        const record = { ...old, ...summary };
        lists.put(record);
        fresh.push(record);
      }
      await finished(tx);
      return fresh;
    },

    /** Counters from the tickets this phone holds: they include scans the server has not seen yet. */
    async localCounts(list, conflicts) {
      const rows = await request(db.transaction("tickets").objectStore("tickets").index("by_list").getAll(list.id));
      const mine = rows.filter((t) => t.on_list && t.status === "valid");
      const admitted = mine.filter((t) => t.admitted);
      return {
        admitted: admitted.length,
        inside: list.count_exits ? admitted.filter((t) => t.inside).length : admitted.length,
        expected: mine.length,
        conflicts: conflicts === undefined ? (list.counts && list.counts.conflicts) || 0 : conflicts,
      };
    },

    /** Store a ticket list (the whole of it, or the changes since the list's cursor); returns the list's record. */
    async saveManifest(list, manifest) {
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
    },

    /** Drop the queued scans the server has answered for. */
    async dropQueued(ids) {
      const tx = db.transaction("queue", "readwrite");
      for (const id of ids) tx.objectStore("queue").delete(id);
      await finished(tx);
    },
  };

  return { store, ticketKey };
})();
