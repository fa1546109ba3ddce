/* Judging a scan on the phone, with no network (window.DoorJudge).
 *
 * The same rules as the server's (ticketing.services.scans: _fixed_result and _judge), from what
 * the phone keeps: the event's public key checks a QR payload's Ed25519 signature (tweetnacl), a
 * typed code is looked up in the ticket list, and the ticket's state (admitted, inside, last entry)
 * moves as the server would move it. `learn` keeps that state in step with the server's answers.
 */
window.DoorJudge = (() => {
  "use strict";

  const { normaliseCode } = window.DoorUtil;
  const { store, ticketKey } = window.DoorStore;
  const PAYLOAD_PREFIX = "B1";

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
      const ticket = await store.ticketByCode(list.id, code);
      if (ticket) return { ticket };
    }
    return { result: "invalid", reason: "No ticket with this code for this session." };
  }

  /**
   * The answer the phone gives alone, and the ticket's new state (saved before it returns).
   * `door` names this phone on the ticket's entry; `whenChanged` runs after a ticket's state changed.
   */
  async function judgeHere(list, raw, { dir, override, at, door, whenChanged }) {
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
          last_entry_door: door,
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
      await whenChanged();
    }
    return { ...shown, result };
  }

  /** Keep the phone's copy of a ticket in step with what the server just said about it. */
  async function learn(list, answer, door) {
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
        last_entry_door: door,
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

  return { judgeHere, learn };
})();
