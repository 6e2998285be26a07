// A camera's 7-day timeline and its player. The timeline comes from
// /api/v1/cameras/{id}/timeline a day at a time; a tap plays from that moment through the media
// channel's WebSocket (/api/v1/cameras/{id}/playback), fMP4 appended to Media Source Extensions.
"use strict";
(() => {
  const DAY = 86400;
  const ZOOMS = [15, 60, 360, 2160]; // px per hour: the whole day, 6 h, 1 h, 10 min on a phone
  const ZOOM_NAMES = ["24h", "6h", "1h", "10min"];
  const root = document.getElementById("playback");
  if (!root) return;
  const camera = root.dataset.camera;
  const video = document.getElementById("player");
  const status = document.getElementById("status");
  const track = document.getElementById("track");
  const scroller = document.getElementById("timeline");
  const lang = document.documentElement.lang;
  const clock = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const dayFmt = new Intl.DateTimeFormat(lang, { month: "short", day: "numeric", weekday: "short" });
  let zoom = 0;
  let dayStart = 0;
  let speed = 1;
  let playFrom = null; // the media time 0 of the current stream, epoch seconds
  let socket = null;
  let newest = null; // the end of the day's last recorded span: where zooming in goes when nothing plays
  const cache = new Map();

  function midnight(t) {
    const d = new Date(t * 1000);
    d.setHours(0, 0, 0, 0);
    return d.getTime() / 1000;
  }
  function say(text) { status.textContent = text; }
  function playing() { return playFrom === null ? null : playFrom + video.currentTime; }

  // --- the player ----------------------------------------------------------------------------
  function stop() {
    if (socket) { socket.onclose = null; socket.close(); socket = null; }
  }

  function play(t) {
    stop();
    if (!diaolouMedia.available) { say(root.dataset.tNoMse); return; }
    say(root.dataset.tLoading);
    playFrom = t;
    const media = diaolouMedia.attach(video);
    const source = media.source;
    const queue = [];
    let buffer = null;
    const pump = () => {
      if (buffer && !buffer.updating && queue.length && source.readyState === "open" && media.streaming) {
        buffer.appendBuffer(queue.shift());
      }
    };
    media.onresume = pump;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/api/v1/cameras/${encodeURIComponent(camera)}/playback?start=${t.toFixed(3)}&speed=${speed}`;
    const ws = new WebSocket(url);
    socket = ws;
    ws.binaryType = "arraybuffer";
    ws.onmessage = (message) => {
      if (typeof message.data === "string") {
        const notice = JSON.parse(message.data);
        if (notice.state === "playing" && notice.time) { // the recorded time of the first frame
          playFrom = notice.time;
          say("");
        } else if (notice.state === "ended" || notice.state === "failed" || notice.state === "offline") {
          say(`${root.dataset.tEnded}${notice.error ? ": " + notice.error : ""}`);
        }
        return;
      }
      const bytes = new Uint8Array(message.data);
      if (!buffer) {
        const start = () => {
          buffer = source.addSourceBuffer(`video/mp4; codecs="${diaolouMedia.codecOf(bytes)}"`);
          buffer.mode = "segments";
          buffer.addEventListener("updateend", pump);
          queue.push(bytes);
          pump();
          video.playbackRate = speed;
          video.play().catch(() => {});
        };
        if (source.readyState === "open") start(); else source.addEventListener("sourceopen", start, { once: true });
        return;
      }
      queue.push(bytes);
      pump();
    };
    ws.onclose = (event) => { if (event.code === 4404 || event.code === 1008) say(event.reason || root.dataset.tNoRecording); };
  }

  video.addEventListener("timeupdate", () => {
    const t = playing();
    if (t === null) return;
    const shown = document.getElementById("now-playing");
    shown.textContent = clock.format(new Date(t * 1000));
    shown.dataset.t = String(t);
    cursor(t);
  });
  document.getElementById("back30").addEventListener("click", () => { const t = playing(); if (t !== null) play(t - 30); });
  document.getElementById("fwd30").addEventListener("click", () => { const t = playing(); if (t !== null) play(t + 30); });
  for (const b of document.querySelectorAll("[data-speed]")) {
    b.addEventListener("click", () => {
      speed = Number(b.dataset.speed);
      for (const o of document.querySelectorAll("[data-speed]")) o.classList.toggle("on", o === b);
      const t = playing();
      if (t !== null) play(t);
    });
  }

  // --- the timeline --------------------------------------------------------------------------
  function width() { return 24 * ZOOMS[zoom]; }
  function x(t) { return ((t - dayStart) / DAY) * width(); }
  function bar(cls, from, to, title) {
    const el = document.createElement("div");
    el.className = cls;
    el.style.left = `${x(from)}px`;
    el.style.width = `${Math.max(2, x(to) - x(from))}px`;
    if (title) el.title = title;
    track.appendChild(el);
  }
  function cursor(t) {
    let el = document.getElementById("cursor");
    if (!el) { el = document.createElement("div"); el.id = "cursor"; track.appendChild(el); }
    el.hidden = t < dayStart || t >= dayStart + DAY;
    el.style.left = `${x(t)}px`;
  }
  async function load(start) {
    if (!cache.has(start)) {
      const url = `/api/v1/cameras/${encodeURIComponent(camera)}/timeline?start=${start}&end=${start + DAY}`;
      cache.set(start, fetch(url, { credentials: "same-origin" }).then((r) => r.json()));
    }
    return cache.get(start);
  }
  async function draw() {
    track.replaceChildren();
    track.style.width = `${width()}px`;
    const step = [3, 1, 1 / 6, 1 / 60][zoom] * 3600; // a label every 3 h, 1 h, 10 min, 1 min
    for (let t = dayStart; t < dayStart + DAY; t += step) {
      const tick = document.createElement("span");
      tick.className = "tick";
      tick.style.left = `${x(t)}px`;
      tick.textContent = clock.format(new Date(t * 1000)).slice(0, 5);
      track.appendChild(tick);
    }
    document.getElementById("zoom-label").textContent = ZOOM_NAMES[zoom];
    const data = await load(dayStart);
    const note = document.getElementById("timeline-note");
    note.textContent = data.recording_known ? "" : `${root.dataset.tUnknown}: ${data.recording_error || ""}`;
    for (const g of data.gaps || []) bar(g.reason === "damaged segment" ? "gap bad" : "gap", g.start, g.end, g.problem);
    for (const s of data.spans || []) bar("rec", s.start, s.end);
    newest = data.spans && data.spans.length ? data.spans[data.spans.length - 1].end : null;
    for (const m of data.motion || []) bar("mot", m.start, m.end);
    for (const p of data.persons || []) bar("per", p.start, p.end || p.start + 1);
    if (playing() !== null) cursor(playing());
  }
  track.addEventListener("click", (event) => {
    if (event.target.classList.contains("tick")) return;
    const rect = track.getBoundingClientRect();
    play(Math.round((dayStart + ((event.clientX - rect.left) / width()) * DAY) * 1000) / 1000);
  });
  function zoomTo(level, around) {
    const keep = around ?? dayStart + ((scroller.scrollLeft + scroller.clientWidth / 2) / width()) * DAY;
    zoom = Math.max(0, Math.min(ZOOMS.length - 1, level));
    draw();
    scroller.scrollLeft = x(keep) - scroller.clientWidth / 2;
  }
  document.getElementById("zoom-in").addEventListener("click", () => zoomTo(zoom + 1, playing() ?? newest ?? undefined));
  document.getElementById("zoom-out").addEventListener("click", () => zoomTo(zoom - 1));

  const days = document.getElementById("days");
  const today = midnight(Date.now() / 1000);
  function selectDay(start) {
    dayStart = start;
    for (const b of days.children) {
      b.classList.toggle("on", Number(b.dataset.day) === start);
      if (Number(b.dataset.day) === start) b.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
    draw();
  }
  for (let n = 6; n >= 0; n--) {
    const start = midnight(today - n * DAY + 3600); // an hour in: a daylight-saving day is 23 or 25 h
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.day = String(start);
    b.textContent = dayFmt.format(new Date(start * 1000));
    b.addEventListener("click", () => selectDay(start));
    days.appendChild(b);
  }
  window.diaolouPlayback = { from: () => playFrom }; // for tests and the console: media time 0 of the stream
  const asked = Number(root.dataset.start);
  if (asked) {
    selectDay(midnight(asked));
    zoomTo(2, asked);
    play(asked);
  } else {
    selectDay(today);
    days.scrollLeft = days.scrollWidth;
  }
})();
