"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login");
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const data = new FormData(form);
    const response = await fetch("/api/v1/auth/login", {
      method: "POST", headers: { "Content-Type": "application/json" }, credentials: "same-origin",
      body: JSON.stringify({ username: data.get("username"), password: data.get("password") }),
    });
    if (response.ok) {
      const next = form.dataset.next || "/";
      // Only a path on this hub: "//host" and "/\host" would leave it (browsers read a backslash as /).
      location.href = /^\/(?![\/\\])/.test(next) ? next : "/";
      return;
    }
    let detail = form.dataset.wrong;
    if (response.status !== 401) {
      try { detail = (await response.json()).detail; } catch (e) { /* keep the default */ }
    }
    error.textContent = detail;
    error.hidden = false;
  });
});
