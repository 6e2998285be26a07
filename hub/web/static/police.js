// The police console: escalated incidents live (SSE, resumes after a reconnect), a tone on each
// new escalation, the station's steps, and one tap to live view, playback or a clip pull.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const list = document.getElementById("police-list");
  const labels = list.dataset.labels.split("|");
  const stateNames = Object.fromEntries(list.dataset.states.split("|").map((pair) => pair.split("=")));
  const steps = { escalated: ["acknowledge", 0], acknowledged: ["dispatch", 1], dispatched: ["on_scene", 2], on_scene: ["done", 3] };
  const error = document.getElementById("police-error");
  let audio = null;
  document.getElementById("sound-on").addEventListener("click", () => { audio = audio || new AudioContext(); audio.resume(); });
  function beep() {
    if (!audio) return;
    const osc = audio.createOscillator();
    osc.frequency.value = 880;
    osc.connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.4);
  }
  function link(text, href) { const a = document.createElement("a"); a.className = "button"; a.textContent = text; a.href = href; return a; }
  function fill(li) {
    const box = li.querySelector(".actions");
    box.replaceChildren();
    const next = steps[li.dataset.state];
    if (next && list.dataset.role === "police") {
      const b = document.createElement("button");
      b.type = "button"; b.dataset.step = next[0]; b.textContent = labels[next[1]];
      box.append(b);
    }
    if (li.dataset.hasCamera === "1") {
      const cam = encodeURIComponent(li.dataset.camera);
      const t = Math.floor(Number(li.dataset.created)) - 30;
      box.append(link(labels[4], `/cameras/${cam}/live`), link(labels[5], `/cameras/${cam}/playback?t=${t}`));
      const clip = document.createElement("button");
      clip.type = "button"; clip.dataset.clip = "1"; clip.textContent = labels[6];
      box.append(clip);
    }
  }
  for (const li of list.querySelectorAll("li[data-id]")) fill(li);
  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const li = button.closest("li[data-id]");
    try {
      if (button.dataset.step) {
        await diaolou.send("POST", `/api/v1/incidents/${li.dataset.id}/police/${button.dataset.step}`, { note: "" });
      } else if (button.dataset.clip) {
        const t = Number(li.dataset.created);
        const end = Math.min(t + 60, Date.now() / 1000);
        await diaolou.send("POST", `/api/v1/incidents/${li.dataset.id}/clips`, { start: t - 60, end });
        location.href = "/clips";
      }
    } catch (e) { error.textContent = e.message; error.hidden = false; }
  });
  const state = document.getElementById("live-state");
  const source = new EventSource("/api/v1/police/stream");
  source.onopen = () => { state.textContent = "●"; state.className = "badge ok"; };
  source.onerror = () => { state.textContent = "…"; state.className = "badge"; };
  source.addEventListener("incident", (event) => {
    const item = JSON.parse(event.data);
    document.getElementById("police-empty")?.remove();
    let li = list.querySelector(`li[data-id="${item.id}"]`);
    if (!li) {
      li = document.createElement("li");
      li.className = "card incident";
      li.dataset.id = item.id;
      li.innerHTML = '<div class="caption"><strong></strong> <span class="badge bad police-state"></span></div><div class="meta"></div><div class="actions"></div>';
      li.querySelector("strong").textContent = `#${item.id} ${item.title}`;
      li.querySelector(".meta").textContent = `${item.site || ""} · ${item.category}`;
      list.prepend(li);
    }
    li.dataset.camera = `${item.site}.${item.device}.${item.camera}`;
    li.dataset.hasCamera = item.camera ? "1" : "0";
    li.dataset.created = item.created;
    li.dataset.state = item.police_state;
    const badge = li.querySelector(".police-state");
    badge.textContent = stateNames[item.police_state] || item.police_state;
    badge.dataset.state = item.police_state;
    li.classList.toggle("overdue", item.overdue);
    li.querySelector(".overdue-badge")?.remove();
    if (item.overdue) {
      const late = document.createElement("span");
      late.className = "badge bad overdue-badge";
      late.dataset.overdueDue = item.due;
      late.dataset.units = list.dataset.units;
      badge.after(" ", late);
      diaolou.formatOverdue(li);
    }
    fill(li);
    if (item.police_state === "escalated") beep();
  });
});
