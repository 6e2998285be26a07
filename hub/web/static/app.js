// Shared by every page: local times, the CSRF header, sign-out.
"use strict";
const diaolou = (() => {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";
  const lang = meta("lang") === "en" ? "en-GB" : "zh-CN";
  const fmt = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "medium" });
  function formatTimes(root) {
    for (const el of root.querySelectorAll("time[data-t]")) {
      el.textContent = fmt.format(new Date(Number(el.dataset.t) * 1000));
    }
  }
  // Every request that changes something carries the page's CSRF token.
  async function send(method, url, body) {
    const headers = { "X-CSRF-Token": meta("csrf") };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin" });
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(detail);
    }
    return response;
  }
  document.addEventListener("DOMContentLoaded", () => {
    formatTimes(document);
    document.getElementById("sign-out")?.addEventListener("click", async () => {
      try { await send("POST", "/api/v1/auth/logout"); } finally { location.href = "/login"; }
    });
    document.getElementById("sign-out-everywhere")?.addEventListener("click", async () => {
      try { await send("POST", "/api/v1/auth/logout-everywhere"); } finally { location.href = "/login"; }
    });
  });
  return { formatTimes, send, fmt };
})();
