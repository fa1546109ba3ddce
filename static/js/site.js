// htmx swaps 4xx answers too: a sold-out or invalid booking comes back as the form with its message,
// and the page explains it in place instead of doing nothing. Focus moves to the first message.
document.addEventListener("DOMContentLoaded", function () {
  if (!window.htmx) return;
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "4..", swap: true, error: false },
    { code: "5..", swap: true, error: true },
  ];
});
// A swap must not lose the keyboard focus either (the free times refresh every 10 s while someone
// may be tabbing through them). htmx itself puts the focus back on an element with an id; for one
// without (a time link), remember its href and focus the link with the same href in the new content.
var focusedHref = null;
document.addEventListener("htmx:beforeSwap", function (event) {
  var active = document.activeElement, target = event.detail.target;
  focusedHref = active && !active.id && target && target.contains(active) ? active.getAttribute("href") : null;
});
document.addEventListener("htmx:afterSwap", function (event) {
  // event.target is the new content: after an outerHTML swap detail.target is the element it replaced
  var swapped = event.target;
  if (!swapped.querySelector) return;  // htmx also signals text nodes
  var alert = swapped.matches("[role=alert]") ? swapped : swapped.querySelector("[role=alert]");
  if (alert) { alert.setAttribute("tabindex", "-1"); alert.focus(); focusedHref = null; return; }
  if (!focusedHref || (document.activeElement && document.activeElement !== document.body)) return;
  var same = Array.prototype.find.call(swapped.querySelectorAll("[href]"), function (e) {
    return e.getAttribute("href") === focusedHref;
  });
  if (same) { same.focus({ preventScroll: true }); focusedHref = null; }
});
// On a phone the catalogue shows its results first: the extra filters start folded.
document.addEventListener("DOMContentLoaded", function () {
  if (!window.matchMedia("(max-width: 48rem)").matches) return;
  document.querySelectorAll("details.more-filters").forEach(function (box) { box.open = false; });
});
