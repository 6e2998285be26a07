// One incident: take a step (with a note and, first uploaded, a photo) and reload.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("step-form");
  if (!form) return;
  const id = document.getElementById("incident").dataset.id;
  const error = document.getElementById("step-error");
  const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
  form.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    button.disabled = true;
    try {
      const photos = [];
      const file = form.querySelector("input[type=file]")?.files[0];
      if (file) {
        const response = await fetch(`/api/v1/incidents/${id}/photos`, {
          method: "POST", body: file, credentials: "same-origin",
          headers: { "X-CSRF-Token": meta("csrf"), "Content-Type": file.type || "application/octet-stream" },
        });
        const body = await response.json();
        if (!response.ok) throw new Error(body.detail);
        photos.push(body.name);
      }
      const note = form.querySelector("textarea[name=note]").value;
      await diaolou.send("POST", `/api/v1/incidents/${id}/actions/${button.dataset.action}`, { note, photos });
      location.reload();
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      button.disabled = false;
    }
  });
});
