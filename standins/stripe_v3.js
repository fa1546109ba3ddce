/*
 * Stand-in Stripe.js for the local Stripe server (standins/stripe_server.py).
 *
 * Enough of https://js.stripe.com/v3/ for a checkout page: Stripe(publishableKey), elements() with
 * the Payment Element (plain labelled inputs for card number, expiry and CVC), confirmPayment,
 * confirmSetup, retrievePaymentIntent/retrieveSetupIntent, and the older card-element calls.
 * As on Stripe: a success redirects to return_url with payment_intent (or setup_intent), its client
 * secret and redirect_status; a declined card resolves {error} and stays on the page.
 * Test cards: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 declines, 4000 0025 0000 3155 asks
 * for 3-D Secure (a browser confirm() dialog stands in for the bank's page).
 */
(function () {
  'use strict';

  // The server that served this script is the API: pages need no other setting.
  const API = document.currentScript.src.replace(/\/js\.stripe\.com\/v3\/?(\?.*)?$/, '');
  let elementCount = 0;

  // Stripe's form encoding: nested objects become key[sub]=value.
  function encode(params, prefix, out) {
    out = out || new URLSearchParams();
    Object.entries(params).forEach(([name, value]) => {
      const key = prefix ? `${prefix}[${name}]` : name;
      if (value === undefined || value === null) return;
      if (typeof value === 'object') encode(value, key, out);
      else out.append(key, String(value));
    });
    return out;
  }

  // Form-encoded bodies and query strings keep requests "simple", so no CORS preflight is needed.
  async function call(method, path, params) {
    const body = encode(params);
    const response = method === 'GET'
      ? await fetch(`${API}${path}?${body}`)
      : await fetch(`${API}${path}`, {method, body});
    const json = await response.json().catch(() => ({}));
    if (!response.ok || json.error) {
      return {error: json.error || {type: 'api_error', message: `HTTP ${response.status}`}};
    }
    return {result: json};
  }

  function parseSecret(clientSecret) {
    const match = /^((pi|seti)_[A-Za-z0-9]+)_secret_/.exec(clientSecret || '');
    if (!match) throw new Error('Invalid client secret: expected pi_..._secret_... or seti_..._secret_...');
    return {id: match[1], kind: match[2] === 'pi' ? 'payment_intents' : 'setup_intents'};
  }

  class CardForm {
    constructor(type, options) {
      this.type = type;
      this.options = options || {};
      this.listeners = {};
      this.container = null;
    }

    mount(target) {
      const parent = typeof target === 'string' ? document.querySelector(target) : target;
      if (!parent) throw new Error(`mount(): no element matches ${target}`);
      const n = ++elementCount;
      const fields = [
        ['number', 'Card number', 'cc-number', '1234 1234 1234 1234'],
        ['expiry', 'Expiry date (MM / YY)', 'cc-exp', 'MM / YY'],
        ['cvc', 'Security code (CVC)', 'cc-csc', 'CVC'],
      ];
      this.container = document.createElement('div');
      this.container.className = 'StripeElement StandInPaymentElement';
      this.inputs = {};
      fields.forEach(([name, label, autocomplete, placeholder]) => {
        const row = document.createElement('p');
        const labelEl = document.createElement('label');
        const input = document.createElement('input');
        input.id = `standin-stripe-${name}-${n}`;
        input.name = `standin-stripe-${name}`;
        input.inputMode = 'numeric';
        input.autocomplete = autocomplete;
        input.placeholder = placeholder;
        input.addEventListener('input', () => this._emit('change', this._state()));
        labelEl.htmlFor = input.id;
        labelEl.textContent = label;
        row.append(labelEl, document.createElement('br'), input);
        this.container.append(row);
        this.inputs[name] = input;
      });
      parent.append(this.container);
      setTimeout(() => this._emit('ready', {elementType: this.type}), 0);
    }

    unmount() {
      if (this.container) this.container.remove();
      this.container = null;
    }

    destroy() { this.unmount(); }

    focus() { if (this.inputs) this.inputs.number.focus(); }

    clear() { if (this.inputs) Object.values(this.inputs).forEach((input) => { input.value = ''; }); }

    update() {}

    on(event, handler) {
      (this.listeners[event] = this.listeners[event] || []).push(handler);
      return this;
    }

    off(event, handler) {
      this.listeners[event] = (this.listeners[event] || []).filter((h) => h !== handler);
      return this;
    }

    _emit(event, payload) {
      (this.listeners[event] || []).forEach((handler) => handler({elementType: this.type, ...payload}));
    }

    _state() {
      const card = this._card();
      const empty = !this.inputs || Object.values(this.inputs).every((input) => !input.value);
      return {empty, complete: !card.error, error: empty ? undefined : card.error, value: {type: 'card'}};
    }

    // The card as Stripe's API takes it, or a validation_error like Stripe.js reports.
    _card() {
      const invalid = (code, message) => ({error: {type: 'validation_error', code, message}});
      if (!this.inputs) return invalid('incomplete', 'The payment form is not mounted.');
      const number = this.inputs.number.value.replace(/[\s-]/g, '');
      const expiry = /^\s*(\d{1,2})\s*\/?\s*(\d{2}|\d{4})\s*$/.exec(this.inputs.expiry.value);
      const cvc = this.inputs.cvc.value.trim();
      if (!/^\d{16}$/.test(number)) return invalid('incomplete_number', 'Your card number is incomplete.');
      if (!expiry || +expiry[1] < 1 || +expiry[1] > 12) {
        return invalid('incomplete_expiry', "Your card's expiration date is incomplete.");
      }
      if (!/^\d{3,4}$/.test(cvc)) return invalid('incomplete_cvc', "Your card's security code is incomplete.");
      const year = expiry[2].length === 2 ? `20${expiry[2]}` : expiry[2];
      return {card: {number, exp_month: String(+expiry[1]), exp_year: year, cvc}};
    }
  }

  // Confirm the intent behind clientSecret with the card typed into element; resolves {intent} or {error}.
  async function confirmIntent(key, clientSecret, element, paymentMethodExtra) {
    const {id, kind} = parseSecret(clientSecret);
    const card = element ? element._card() : {error: {type: 'validation_error', message: 'No card element.'}};
    if (card.error) return card;
    const auth = {key, client_secret: clientSecret};
    let answer = await call('POST', `/v1/${kind}/${id}/confirm`, {
      ...auth,
      payment_method_data: {type: 'card', card: card.card, ...(paymentMethodExtra || {})},
    });
    if (answer.error) return answer;
    if (answer.result.status === 'requires_action') {
      const approved = window.confirm('Stand-in 3-D Secure: complete the authentication?');
      if (kind === 'payment_intents') {
        answer = await call('POST', `/v1/payment_intents/${id}/_authenticate`, {...auth, success: approved});
      } else if (approved) {
        answer = await call('POST', `/v1/setup_intents/${id}/confirm`, auth);
      } else {
        return {error: {type: 'card_error', code: 'setup_intent_authentication_failure',
                        message: 'We are unable to authenticate your payment method.'}};
      }
      if (answer.error) return answer;
    }
    const intent = answer.result;
    if (intent.status === 'requires_payment_method') {
      return {error: intent.last_payment_error || intent.last_setup_error ||
                     {type: 'card_error', message: 'Your payment could not be completed.'}};
    }
    return {intent};
  }

  function redirectStatus(status) {
    if (status === 'succeeded' || status === 'requires_capture') return 'succeeded';
    return status === 'processing' ? 'processing' : 'failed';
  }

  function redirectTo(returnUrl, intent, clientSecret, prefix) {
    const url = new URL(returnUrl, window.location.href);
    url.searchParams.set(prefix, intent.id);
    url.searchParams.set(`${prefix}_client_secret`, clientSecret);
    url.searchParams.set('redirect_status', redirectStatus(intent.status));
    window.location.assign(url.toString());
  }

  function Stripe(publishableKey) {
    if (typeof publishableKey !== 'string' || !publishableKey.startsWith('pk_')) {
      throw new Error('Stripe(): expected a publishable key (pk_...)');
    }

    async function confirmWithElements(kind, {elements, clientSecret, confirmParams = {}, redirect = 'always'}) {
      const secret = clientSecret || (elements && elements._clientSecret);
      const returnUrl = confirmParams.return_url;
      if (redirect !== 'if_required' && !returnUrl) {
        throw new Error(`confirm${kind}(): confirmParams.return_url is required`);
      }
      const {intent, error} = await confirmIntent(
        publishableKey, secret, elements && elements._element, confirmParams.payment_method_data);
      if (error) return {error};
      const prefix = kind === 'Payment' ? 'payment_intent' : 'setup_intent';
      if (redirect === 'if_required') return {[kind === 'Payment' ? 'paymentIntent' : 'setupIntent']: intent};
      redirectTo(returnUrl, intent, secret, prefix);
      return {};
    }

    async function retrieve(kind, clientSecret) {
      const {id} = parseSecret(clientSecret);
      const answer = await call('GET', `/v1/${kind}/${id}`, {key: publishableKey, client_secret: clientSecret});
      if (answer.error) return {error: answer.error};
      return {[kind === 'payment_intents' ? 'paymentIntent' : 'setupIntent']: answer.result};
    }

    return {
      elements(options = {}) {
        return {
          _clientSecret: options.clientSecret,
          _element: null,
          create(type, elementOptions) {
            if (this._element) throw new Error('The stand-in Stripe.js supports one element per elements().');
            this._element = new CardForm(type, elementOptions);
            return this._element;
          },
          getElement() { return this._element; },
          update() {},
          async fetchUpdates() { return {}; },
          async submit() {
            const card = this._element ? this._element._card() : {error: {type: 'validation_error'}};
            return card.error ? {error: card.error} : {};
          },
        };
      },
      confirmPayment: (options) => confirmWithElements('Payment', options),
      confirmSetup: (options) => confirmWithElements('Setup', options),
      retrievePaymentIntent: (clientSecret) => retrieve('payment_intents', clientSecret),
      retrieveSetupIntent: (clientSecret) => retrieve('setup_intents', clientSecret),
      // The card-element calls resolve without redirecting, as Stripe's do.
      async confirmCardPayment(clientSecret, data = {}) {
        const pm = data.payment_method || {};
        const {intent, error} = await confirmIntent(publishableKey, clientSecret, pm.card,
                                                    {billing_details: pm.billing_details});
        return error ? {error} : {paymentIntent: intent};
      },
      async confirmCardSetup(clientSecret, data = {}) {
        const pm = data.payment_method || {};
        const {intent, error} = await confirmIntent(publishableKey, clientSecret, pm.card,
                                                    {billing_details: pm.billing_details});
        return error ? {error} : {setupIntent: intent};
      },
    };
  }

  window.Stripe = Stripe;
})();
