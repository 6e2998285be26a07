"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const list = document.getElementById("users");
  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const name = button.closest("[data-username]").dataset.username;
    const path = `/api/v1/users/${encodeURIComponent(name)}`;
    if (button.dataset.action === "remove") {
      if (!confirm(list.dataset.confirm)) return;
      await diaolou.send("DELETE", path);
    } else {
      await diaolou.send("POST", `${path}/unlock`);
    }
    location.reload();
  });
  const form = document.getElementById("add-user");
  const error = document.getElementById("add-error");
  const items = (text) => text.split(/[,，\s]+/).filter(Boolean);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      await diaolou.send("POST", "/api/v1/users", {
        username: data.get("username"), password: data.get("password"), role: data.get("role"),
        cameras: items(data.get("cameras")), sites: items(data.get("sites")), locale: document.documentElement.lang === "en" ? "en" : "zh",
      });
      location.reload();
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  });
});
