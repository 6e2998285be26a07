// Live view: the camera's stream over a WebSocket into Media Source Extensions (fragmented MP4,
// the init segment first, one fragment per frame), or refreshed JPEGs where MSE is missing.
// Text messages say what the stream is doing: waiting, playing, ended, failed, offline.
"use strict";
(() => {
  const root = document.getElementById("live");
  if (!root) return;
  const video = document.getElementById("live-video");
  const jpeg = document.getElementById("live-jpeg");
  const stateEl = document.getElementById("live-state");
  const retry = document.getElementById("live-retry");
  const words = root.dataset;
  const params = new URLSearchParams(location.search);
  const useMse = diaolouMedia.available && params.get("fallback") !== "jpeg";
  const KEEP_SECONDS = 20;  // played video kept in the buffer; older is removed
  const MAX_LAG = 1.5;  // further behind the live edge than this: jump to it
  let socket = null, media = null, buffer = null, pending = [], final = false, lastUrl = null;

  function show(key, detail) {
    stateEl.textContent = (words[key] || "") + (detail ? `: ${detail}` : "");
    retry.hidden = !["ended", "failed", "offline", "lost"].includes(key);
  }

  function pump() {
    if (!buffer || buffer.updating || !media.streaming) return;
    const t = video.currentTime, ranges = buffer.buffered;
    if (ranges.length && t - ranges.start(0) > KEEP_SECONDS * 1.5) {
      buffer.remove(ranges.start(0), t - KEEP_SECONDS);
      return;  // updateend comes back here
    }
    if (!pending.length) return;
    try {
      buffer.appendBuffer(pending.shift());
    } catch (e) {
      pending = [];  // quota or a broken fragment: start again from the next message
    }
  }

  function keepLive() {
    const ranges = buffer && buffer.buffered;
    if (!ranges || !ranges.length) return;
    const end = ranges.end(ranges.length - 1);
    if (end - video.currentTime > MAX_LAG || video.currentTime < ranges.start(ranges.length - 1)) {
      video.currentTime = Math.max(ranges.start(ranges.length - 1), end - 0.2);
    }
    if (video.paused) video.play().catch(() => { /* autoplay of muted video is allowed */ });
  }

  function openMse(init) {
    media = diaolouMedia.attach(video);
    media.onresume = pump;
    pending = [init];
    media.source.addEventListener("sourceopen", () => {
      const type = `video/mp4; codecs="${diaolouMedia.codecOf(init)}"`;
      if (!diaolouMedia.isTypeSupported(type)) { show("failed", type); return; }
      buffer = media.source.addSourceBuffer(type);
      buffer.mode = "segments";
      buffer.addEventListener("updateend", () => { keepLive(); pump(); });
      pump();
    }, { once: true });
  }

  function onMedia(data) {
    if (!useMse) {
      const url = URL.createObjectURL(new Blob([data], { type: "image/jpeg" }));
      jpeg.onload = () => { if (lastUrl) URL.revokeObjectURL(lastUrl); lastUrl = url; };
      jpeg.src = url;
      return;
    }
    const bytes = new Uint8Array(data);
    if (!media) openMse(bytes);
    else { pending.push(bytes); pump(); }
  }

  function reset() {
    if (buffer && media && media.source.readyState === "open") {
      try { media.source.endOfStream(); } catch (e) { /* closing anyway */ }
    }
    media = null; buffer = null; pending = [];
  }

  function connect() {
    final = false;
    reset();
    show("waiting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams({ stream: root.dataset.stream, format: useMse ? "fmp4" : "jpeg" });
    socket = new WebSocket(`${scheme}//${location.host}/api/v1/cameras/${encodeURIComponent(root.dataset.camera)}/live?${query}`);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") { onMedia(event.data); return; }
      const status = JSON.parse(event.data);
      if (status.state === "playing") show("playing");
      else { if (status.state !== "waiting") final = true; show(status.state, status.error); }
    };
    socket.onclose = (event) => {
      socket = null;
      if (event.code === 4404) { show("unknown"); return; }
      if (!final) show("lost");
      if (!final && document.visibilityState === "visible") setTimeout(connect, 3000);
    };
  }

  document.getElementById("live-mode").textContent = !useMse ? words.fallback : diaolouMedia.managed ? "MMS" : "MSE";
  jpeg.hidden = useMse;
  video.hidden = !useMse;
  retry.addEventListener("click", connect);
  // Leaving the page closes the socket at once: the hub stops the camera's stream soon after.
  window.addEventListener("pagehide", () => { final = true; if (socket) socket.close(1000); });
  connect();
})();
