// The notifications page: channels (test, pause, remove, add) and arming times per camera.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const api = "/api/v1/notifications";
  const list = document.getElementById("channels");
  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const card = button.closest("[data-channel]");
    const path = `${api}/channels/${encodeURIComponent(card.dataset.channel)}`;
    const result = card.querySelector("[data-role=result]");
    const show = (text, bad) => { result.textContent = text; result.classList.toggle("error", bad); result.hidden = false; };
    button.disabled = true;
    try {
      if (button.dataset.action === "test") {
        const answer = await (await diaolou.send("POST", `${path}/test`)).json();
        show(answer.ok ? list.dataset.testOk : answer.error, !answer.ok);
        return;
      }
      if (button.dataset.action === "remove") {
        if (!confirm(list.dataset.confirm)) return;
        await diaolou.send("DELETE", path);
      } else {
        await diaolou.send("PATCH", path, { enabled: card.dataset.enabled !== "true" });
      }
      location.reload();
    } catch (e) {
      show(e.message, true);
    } finally {
      button.disabled = false;
    }
  });

  const form = document.getElementById("add-channel");
  const error = document.getElementById("add-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const secret = String(data.get("secret") || "").trim();
    try {
      await diaolou.send("POST", `${api}/channels`, {
        name: data.get("name"), kind: data.get("kind"), url: String(data.get("url")).trim(),
        secret: secret || null,
      });
      location.reload();
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  });

  // "20:00-07:00, 12:00-13:30" -> segments; an empty field is an empty list (never armed). The
  // page edits times only: weekdays set through the API stay with a segment whose times are kept.
  const segments = (text, days) => text.split(/[,，;；\s]+/).filter(Boolean).map((part) => {
    const [start, end] = part.split(/[-–~～]/).map((t) => (t || "").trim());
    const kept = days.get(`${start}-${end}`);
    return kept ? { start, end, days: kept } : { start, end };
  });
  const weekdays = (text) => new Map(text.split(";").filter(Boolean).map((item) => {
    const [times, days] = item.split("=");
    return [times, days.split(",").map(Number)];
  }));
  for (const arming of document.querySelectorAll("form.arming")) {
    const camera = arming.closest("[data-camera]").dataset.camera;
    const path = `${api}/arming/${encodeURIComponent(camera)}`;
    const fail = arming.querySelector("[data-role=error]");
    const run = async (action) => {
      try {
        await action();
        location.reload();
      } catch (e) {
        fail.textContent = e.message;
        fail.hidden = false;
      }
    };
    arming.addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(arming);
      run(() => diaolou.send("PUT", path, {
        segments: segments(String(data.get("segments")), weekdays(arming.dataset.days)),
        time_zone: String(data.get("time_zone")).trim() || null,
      }));
    });
    arming.querySelector("[data-action=always]")?.addEventListener("click", () => run(() => diaolou.send("DELETE", path)));
  }
});
