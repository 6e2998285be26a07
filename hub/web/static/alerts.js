// The live feed: new alerts arrive over server-sent events and go on top, without a reload.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const feed = document.getElementById("feed");
  if (!feed || feed.dataset.live !== "yes") return;
  const kinds = JSON.parse(feed.dataset.kinds);
  const sound = document.getElementById("sound");
  sound.checked = localStorage.getItem("diaolou-sound") === "on";
  sound.addEventListener("change", () => localStorage.setItem("diaolou-sound", sound.checked ? "on" : "off"));
  let audio = null;
  function beep() {
    if (!sound.checked) return;
    audio = audio || new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.2, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.6);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.6);
  }
  function item(alert) {
    const li = document.createElement("li");
    li.className = "alert new";
    li.dataset.id = alert.id;
    const a = document.createElement("a");
    a.href = `/alerts/${encodeURIComponent(alert.id)}`;
    if (alert.snapshot) {
      const img = document.createElement("img");
      img.src = `${alert.snapshot}?size=thumb`;
      img.alt = "";
      a.append(img);
    } else {
      const none = document.createElement("div");
      none.className = "noimg";
      none.textContent = feed.dataset.nosnap;
      a.append(none);
    }
    const text = document.createElement("div");
    const title = document.createElement("strong");
    title.textContent = kinds[alert.kind] || alert.kind;
    const when = document.createElement("div");
    when.className = "meta";
    const time = document.createElement("time");
    time.dataset.t = alert.time;
    when.append(time);
    const where = document.createElement("div");
    where.className = "meta";
    where.textContent = (alert.camera || `${alert.site}.${alert.device}`) + (alert.zone ? ` · ${alert.zone}` : "");
    text.append(title, when, where);
    a.append(text);
    li.append(a);
    diaolou.formatTimes(li);
    return li;
  }
  const params = new URLSearchParams();
  if (feed.dataset.camera) params.set("camera", feed.dataset.camera);
  if (feed.dataset.after) params.set("after", feed.dataset.after);
  const source = new EventSource(`/api/v1/alerts/stream?${params}`);
  source.addEventListener("alert", (message) => {
    const alert = JSON.parse(message.data);
    if (feed.dataset.zone && alert.zone !== feed.dataset.zone) return;
    if (feed.querySelector(`[data-id="${CSS.escape(alert.id)}"]`)) return;
    document.getElementById("empty")?.remove();
    feed.prepend(item(alert));
    beep();
  });
});
