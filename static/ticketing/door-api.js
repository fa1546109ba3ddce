/* The door app's client for /door/api/ (window.DoorApi).
 *
 * Every request has a timeout and can be aborted when the phone goes offline. A request that gets
 * no answer (or a 5xx) is a NetworkError: the caller judges the scan on the phone instead. A 4xx
 * with the server's JSON error is an ApiError carrying the status. Each answer's `server_time`
 * keeps the phone's idea of the server clock, so offline scans from doors with wrong clocks agree.
 */
window.DoorApi = (() => {
  "use strict";

  const REQUEST_TIMEOUT_MS = 15000;

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  class NetworkError extends Error {}

  /**
   * A client for `base`. hooks: device() -> {token} or null; failed() when the network let a
   * request down; answered() when one got through; clockOffset(ms) with the server's clock minus
   * this phone's; signedOut(message) when the server no longer knows this phone.
   */
  function client(base, hooks) {
    const inflight = new Set(); // AbortControllers of requests under way

    async function api(path, { method = "GET", data, timeout = REQUEST_TIMEOUT_MS, session = false } = {}) {
      const headers = { Accept: "application/json" };
      if (data !== undefined) headers["Content-Type"] = "application/json";
      const device = hooks.device();
      if (session) headers["X-CSRFToken"] = window.DoorUtil.csrfToken();
      else if (device) headers.Authorization = `Bearer ${device.token}`;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), timeout);
      inflight.add(controller);
      const sentAt = Date.now();
      let response;
      try {
        response = await fetch(base + path, {
          method,
          headers,
          body: data === undefined ? undefined : JSON.stringify(data),
          credentials: "same-origin",
          cache: "no-store",
          signal: controller.signal,
        });
      } catch (error) {
        hooks.failed();
        throw new NetworkError(error.name === "AbortError" ? "The network is too slow." : "No network.");
      } finally {
        clearTimeout(timer);
        inflight.delete(controller);
      }
      let payload = null;
      try {
        payload = await response.json();
      } catch (error) {
        payload = null;
      }
      if (response.status >= 500) {
        hooks.failed();
        throw new NetworkError((payload && payload.error) || `The server is not answering (${response.status}).`);
      }
      if (payload === null) throw new ApiError(response.status, `Unexpected answer (${response.status}). Reload the page.`);
      hooks.answered();
      const roundTrip = Date.now() - sentAt;
      if (payload.server_time && roundTrip < 2000) {
        // The server's clock at the middle of the round trip (a slow one says little about it).
        hooks.clockOffset(Date.parse(payload.server_time) - (sentAt + roundTrip / 2));
      }
      if (response.status === 401 && !session) {
        await hooks.signedOut(payload.error);
        throw new ApiError(401, payload.error || "Sign in again.");
      }
      if (!response.ok) throw new ApiError(response.status, payload.error || `Error ${response.status}`);
      return payload;
    }

    /** Abort every request under way (the network went: they would hang until their timeout). */
    function abortAll() {
      for (const controller of inflight) controller.abort();
    }

    return { api, abortAll };
  }

  return { ApiError, NetworkError, client };
})();
