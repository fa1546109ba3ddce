// Times are printed in the venue's zone by the server. Where the visitor's own zone differs, add
// their local time next to it, and send their zone with forms so emails can show it too.
(function () {
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone) return;
  document.querySelectorAll('input[name="time_zone"]').forEach(function (input) { input.value = zone; });
  var format = new Intl.DateTimeFormat(undefined, {
    weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone: zone, timeZoneName: "short"
  });
  function clock(when, timeZone) {
    return new Intl.DateTimeFormat("en-GB", { day: "numeric", hour: "2-digit", minute: "2-digit", timeZone: timeZone }).format(when);
  }
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
})();
