// Count the hold down to the second; when it runs out, reload so the page shows the truth.
(function () {
  document.querySelectorAll("[data-expires]").forEach(function (box) {
    var ends = new Date(box.dataset.expires).getTime();
    var out = box.querySelector(".countdown");
    if (!out || isNaN(ends)) return;
    function tick() {
      var left = Math.max(0, Math.round((ends - Date.now()) / 1000));
      var m = Math.floor(left / 60), s = left % 60;
      out.textContent = m + ":" + (s < 10 ? "0" : "") + s;
      if (left === 0) { clearInterval(timer); setTimeout(function () { window.location.reload(); }, 1500); }
    }
    var timer = setInterval(tick, 1000);
    tick();
  });
})();
