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
document.addEventListener("htmx:afterSwap", function (event) {
  var alert = event.detail.target && event.detail.target.querySelector && event.detail.target.querySelector("[role=alert]");
  if (alert) { alert.setAttribute("tabindex", "-1"); alert.focus(); }
});
// On a phone the catalogue shows its results first: the extra filters start folded.
document.addEventListener("DOMContentLoaded", function () {
  if (!window.matchMedia("(max-width: 48rem)").matches) return;
  document.querySelectorAll("details.more-filters").forEach(function (box) { box.open = false; });
});
