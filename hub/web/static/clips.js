// The clips page: ask for an evidence clip, follow its progress, download the signed package;
// admins release a clip's hold with a reason.
"use strict";
(() => {
  const list = document.getElementById("clips");
  const form = document.getElementById("clip-form");
  if (!list || !form) return;
  const words = list.dataset;
  const label = { queued: words.tQueued, building: words.tBuilding, uploading: words.tUploading, ready: words.tReady,
    failed: words.tFailed };
  let timer = null;

  function item(clip) {
    const li = document.createElement("li");
    li.dataset.clip = clip.id;
    const reason = document.createElement("div");
    reason.className = "reason";
    reason.textContent = clip.reason;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${clip.camera} · ${diaolou.fmt.format(new Date(clip.start * 1000))} – ` +
      `${diaolou.fmt.format(new Date(clip.end * 1000))} · ${clip.requested_by}`;
    const state = document.createElement("div");
    state.className = `state ${clip.status}`;
    state.textContent = label[clip.status] + (clip.error ? `: ${clip.error}` : "");
    li.append(reason, meta, state);
    if (clip.status !== "ready" && clip.status !== "failed") {
      const bar = document.createElement("progress");
      bar.max = 1;
      bar.value = clip.progress;
      li.append(bar);
    }
    const actions = document.createElement("div");
    actions.className = "actions";
    if (clip.package) {
      const a = document.createElement("a");
      a.className = "button download";
      a.href = clip.package;
      a.textContent = words.tDownload;
      actions.append(a);
    }
    if (words.admin && clip.status === "ready") {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "danger release";
      b.textContent = words.tRelease;
      b.addEventListener("click", async () => {
        const why = prompt(words.tReleaseReason);
        if (!why) return;
        try {
          await diaolou.send("POST", `/api/v1/clips/${clip.id}/release-hold`, { reason: why });
          b.replaceWith(Object.assign(document.createElement("span"), { className: "meta", textContent: words.tReleased }));
        } catch (e) { alert(e.message); }
      });
      actions.append(b);
    }
    li.append(actions);
    return li;
  }

  async function refresh() {
    const response = await fetch("/api/v1/clips", { credentials: "same-origin" });
    if (!response.ok) return;
    const clips = (await response.json()).items;
    list.replaceChildren(...clips.map(item));
    document.getElementById("no-clips").hidden = clips.length > 0;
    clearTimeout(timer);
    if (clips.some((c) => c.status !== "ready" && c.status !== "failed")) timer = setTimeout(refresh, 1000);
  }

  // Defaults: the last ten minutes, in the phone's local time.
  const local = (t) => { const d = new Date(t * 1000); d.setMinutes(d.getMinutes() - d.getTimezoneOffset());
    return d.toISOString().slice(0, 19); };
  const now = Math.floor(Date.now() / 1000);
  form.start.value = local(now - 600);
  form.end.value = local(now);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("clip-error");
    error.textContent = "";
    const epoch = (v) => new Date(v).getTime() / 1000; // datetime-local is the phone's local time
    try {
      await diaolou.send("POST", "/api/v1/clips", { camera: form.camera.value, start: epoch(form.start.value),
        end: epoch(form.end.value), reason: form.reason.value });
      form.reason.value = "";
      refresh();
    } catch (e) { error.textContent = e.message; }
  });
  refresh();
})();
