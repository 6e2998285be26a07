// The alert page's "raise an incident": POST /api/v1/incidents, then the incident it landed on (a
// new one, or the open one of the same place and category that took the alert, which says so).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("raise-form");
  if (!form) return;
  const error = document.getElementById("raise-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = document.getElementById("raise-button");
    button.disabled = true;
    try {
      const data = new FormData(form);
      const response = await diaolou.send("POST", "/api/v1/incidents", {
        alert_id: form.dataset.alert, category: data.get("category"), priority: data.get("priority"), note: data.get("note"),
      });
      const body = await response.json();
      location.href = `/incidents/${body.incident.id}?raised=${body.attached ? "attached" : "new"}`;
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      button.disabled = false;
    }
  });
});
