// Times are printed in the venue's zone by the server. Where the visitor's own zone differs, add
// their local time next to it, and send their zone with forms so emails can show it too.
// The zone is the one chosen at /time-zone/ (cookie "tz"), else the browser's own.
(function () {
  var chosen = (document.cookie.match(/(?:^|; )tz=([^;]+)/) || [])[1];
  var zone = chosen ? decodeURIComponent(chosen) : null;
  if (!zone) { try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; } }
  if (!zone) return;
  document.querySelectorAll("[data-your-zone]").forEach(function (link) { link.textContent = "Times also shown in " + zone + " (change)"; });
  document.querySelectorAll('input[name="time_zone"]').forEach(function (input) { input.value = zone; });
  var format = new Intl.DateTimeFormat(undefined, {
    weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone: zone, timeZoneName: "short"
  });
  function clock(when, timeZone) {
    return new Intl.DateTimeFormat("en-GB", { day: "numeric", hour: "2-digit", minute: "2-digit", timeZone: timeZone }).format(when);
  }
  function annotate() {
  document.querySelectorAll("time[data-venue-zone]").forEach(function (el) {
    if (el.dataset.venueZone === zone || el.dataset.localShown) return;
    var when = new Date(el.getAttribute("datetime"));
    if (isNaN(when)) return;
    // Another zone name with the same clock (UTC and London in winter) needs no second time.
    try { if (clock(when, el.dataset.venueZone) === clock(when, zone)) return; } catch (e) { /* unknown zone */ }
    var note = document.createElement("span");
    note.className = "your-time";
    note.textContent = " (" + format.format(when) + " your time)";
    el.after(note);
    el.dataset.localShown = "1";
  });
  }
  // A single note for a grid of times: how the visitor's clock relates to the venue's.
  function zoneNotes() {
    document.querySelectorAll("[data-zone-note]").forEach(function (note) {
      var venue = note.dataset.venueZone, now = new Date();
      try {
        var offset = function (tz) {
          var parts = new Intl.DateTimeFormat("en-US", { timeZone: tz, hour12: false, year: "numeric", month: "2-digit",
            day: "2-digit", hour: "2-digit", minute: "2-digit" }).formatToParts(now);
          var get = function (type) { return parseInt(parts.find(function (p) { return p.type === type; }).value, 10); };
          return Date.UTC(get("year"), get("month") - 1, get("day"), get("hour") % 24, get("minute"));
        };
        var minutes = Math.round((offset(zone) - offset(venue)) / 60000);
        if (minutes === 0) return;
        var hours = Math.abs(minutes) / 60;
        note.textContent = "Times are the venue's (" + venue + "). Your clock (" + zone + ") is " +
          (hours % 1 ? hours.toFixed(1) : hours) + " hour" + (hours === 1 ? "" : "s") + (minutes > 0 ? " ahead." : " behind.");
        note.hidden = false;
      } catch (e) { /* unknown zone: keep the venue's time only */ }
    });
  }
  annotate();
  zoneNotes();
  document.addEventListener("htmx:afterSwap", function () { annotate(); zoneNotes(); });  // refreshed availability gets "your time" too
})();
