// Show as many "who is coming" name fields as places chosen (the quantity, or the tickets added up).
// Without JavaScript every field shows, which works just as well.
(function () {
  function sync() {
    var form = document.getElementById("booking-form");
    if (!form) return;
    var box = form.querySelector("[data-attendees]");
    if (!box) return;
    var count = 0;
    var quantity = form.querySelector("select[name=quantity]");
    if (quantity) count = parseInt(quantity.value, 10) || 0;
    form.querySelectorAll("input[name^=qty_]").forEach(function (input) { count += parseInt(input.value, 10) || 0; });
    box.hidden = count < 2;
    box.querySelectorAll("[data-attendee]").forEach(function (field) {
      field.hidden = parseInt(field.dataset.attendee, 10) > count;
    });
  }
  document.addEventListener("input", sync);
  document.addEventListener("change", sync);
  document.addEventListener("htmx:afterSwap", sync);
  document.addEventListener("DOMContentLoaded", sync);
})();
