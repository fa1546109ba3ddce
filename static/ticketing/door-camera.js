/* The door phone's camera as a QR scanner (window.DoorCamera).
 *
 * The browser's BarcodeDetector where it has one (Chrome on Android), else jsQR on frames scaled to
 * at most 800 px wide. A code still in view counts once, and again only after it has been out of
 * sight for SAME_CODE_MS, so a customer holding their phone up is not admitted twice.
 */
window.DoorCamera = (() => {
  "use strict";

  const { $ } = window.DoorUtil;
  const SAME_CODE_MS = 3000; // the camera ignores a code it saw this recently

  async function qrDetector() {
    if (!("BarcodeDetector" in window)) return null;
    try {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      if (!formats.includes("qr_code")) return null;
      return new window.BarcodeDetector({ formats: ["qr_code"] });
    } catch (error) {
      return null;
    }
  }

  /** The text of a QR code in an ImageData, or null (jsQR, for browsers without BarcodeDetector). */
  function decodeImageData(image) {
    if (!window.jsQR) return null;
    const code = window.jsQR(image.data, image.width, image.height, { inversionAttempts: "attemptBoth" });
    return code ? code.data : null;
  }

  /**
   * Start the camera and read codes until stopped; each new code goes to `onCode`. Returns the
   * running camera (for `stop`), or null after telling the user through `notice` why not.
   */
  async function start({ onCode, notice }) {
    const toggle = $("camera-toggle");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      notice("This browser cannot use the camera here. Type the codes instead.", "bad");
      return null;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
        audio: false,
      });
    } catch (error) {
      notice(
        error.name === "NotAllowedError"
          ? "The camera is blocked. Allow it in the browser's site settings, or type the codes."
          : "No camera could be started. Type the codes instead.",
        "bad",
      );
      return null;
    }
    const video = $("camera-video");
    video.srcObject = stream;
    $("camera-view").hidden = false;
    await video.play().catch(() => {});
    const detector = await qrDetector();
    const camera = {
      stream,
      detector,
      canvas: document.createElement("canvas"),
      timer: null,
      lastText: "",
      lastSeen: 0,
      stopped: false,
      onCode,
    };
    toggle.textContent = "Stop camera";
    toggle.setAttribute("aria-pressed", "true");
    $("camera-hint").textContent = detector ? "Point at the QR code" : "Point at the QR code (hold steady)";
    notice("");
    const look = async () => {
      if (camera.stopped) return;
      try {
        const text = await readFrame(camera, video);
        if (text) seen(camera, text);
      } catch (error) {
        /* a frame that could not be read: try the next one */
      }
      if (!camera.stopped) camera.timer = setTimeout(look, camera.detector ? 100 : 150);
    };
    look();
    return camera;
  }

  async function readFrame(camera, video) {
    if (video.readyState < 2 || !video.videoWidth) return null;
    if (camera.detector) {
      const codes = await camera.detector.detect(video);
      return codes.length ? codes[0].rawValue : null;
    }
    // jsQR reads pixels: scale the frame to at most 800 px wide, enough for a phone-screen code.
    const scale = Math.min(1, 800 / video.videoWidth);
    const width = Math.round(video.videoWidth * scale);
    const height = Math.round(video.videoHeight * scale);
    const canvas = camera.canvas;
    if (canvas.width !== width) canvas.width = width;
    if (canvas.height !== height) canvas.height = height;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(video, 0, 0, width, height);
    return decodeImageData(context.getImageData(0, 0, width, height));
  }

  function seen(camera, text) {
    // The same code stays in view for a while: it counts once, and again only after it has been
    // out of sight for SAME_CODE_MS (someone coming back round).
    const now = Date.now();
    const repeat = text === camera.lastText && now - camera.lastSeen < SAME_CODE_MS;
    camera.lastText = text;
    camera.lastSeen = now;
    if (!repeat) camera.onCode(text);
  }

  function stop(camera) {
    if (!camera) return;
    camera.stopped = true;
    clearTimeout(camera.timer);
    for (const track of camera.stream.getTracks()) track.stop();
    const video = $("camera-video");
    video.srcObject = null;
    $("camera-view").hidden = true;
    const toggle = $("camera-toggle");
    toggle.textContent = "Start camera";
    toggle.setAttribute("aria-pressed", "false");
  }

  return { start, stop, decodeImageData };
})();
