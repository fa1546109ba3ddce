// Stripe's Payment Element on the checkout page. The button is disabled while a confirmation is in
// flight, so a double click never confirms twice; errors (a declined card) are shown in place and
// the customer can try again while the hold lasts.
(function () {
  var form = document.getElementById("checkout");
  if (!form || typeof Stripe === "undefined") return;
  var stripe = Stripe(form.dataset.publishableKey);
  var elements = stripe.elements({ clientSecret: form.dataset.clientSecret });
  elements.create("payment").mount("#payment-element");
  var button = document.getElementById("pay-button");
  var message = document.getElementById("payment-message");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    message.hidden = true;
    var confirm = form.dataset.kind === "setup" ? stripe.confirmSetup : stripe.confirmPayment;
    confirm.call(stripe, { elements: elements, confirmParams: { return_url: form.dataset.returnUrl } })
      .then(function (result) {
        if (result && result.error) {
          message.textContent = (result.error.message || "The payment did not go through.") + " Please check the card details or use another card.";
          message.hidden = false;
          message.tabIndex = -1;  // a div takes the focus only with a tabindex; -1 keeps it out of the Tab order
          message.focus();
          button.disabled = false;
          button.removeAttribute("aria-busy");
        }
      });
  });
})();
