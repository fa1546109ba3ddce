/* The answer the door shows for a scan: one big word, the ticket, why, and where it was judged
 * (window.DoorAnswer).
 *
 * Each result has a word, a colour tone and a vibration pattern, so door staff can tell "Valid" from
 * "Already in" at arm's length in a dark entrance without reading the detail.
 */
window.DoorAnswer = (() => {
  "use strict";

  const { $, el, clock, dayAndClock } = window.DoorUtil;

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

  /** Say a scan is being checked, while the server is asked. */
  function pending(raw) {
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

  function explanation(answer, opensAt) {
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
        const opens = answer.opens_at || opensAt;
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

  /** Show an answer (null: ready for the next scan); `opensAt` is when the session's check-in opens. */
  function show(answer, { opensAt } = {}) {
    const box = $("answer");
    const override = $("override");
    box.removeAttribute("aria-busy");
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
    const note = explanation(answer, opensAt);
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

  return { show, pending };
})();
