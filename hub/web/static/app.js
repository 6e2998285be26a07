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
  // An incident past its deadline: "超期 3小时 20分钟" / "3 h 20 min overdue", counting up while the page
  // is open. The badge carries its deadline (data-overdue-due) and the words (data-units, i18n).
  function overdueText(units, due) {
    const [pattern, d, h, m] = units.split("|");
    let minutes = Math.max(1, Math.floor((Date.now() / 1000 - due) / 60));
    const days = Math.floor(minutes / 1440);
    const hours = Math.floor((minutes % 1440) / 60);
    minutes %= 60;
    const parts = days ? [days + d, hours + h] : hours ? [hours + h, minutes + m] : [minutes + m];
    return pattern.replace("{}", parts.join(" "));
  }
  function formatOverdue(root) {
    for (const el of root.querySelectorAll("[data-overdue-due]")) {
      el.textContent = overdueText(el.dataset.units, Number(el.dataset.overdueDue));
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
    formatOverdue(document);
    setInterval(() => formatOverdue(document), 60000);
    document.getElementById("sign-out")?.addEventListener("click", async () => {
      try { await send("POST", "/api/v1/auth/logout"); } finally { location.href = "/login"; }
    });
    document.getElementById("sign-out-everywhere")?.addEventListener("click", async () => {
      try { await send("POST", "/api/v1/auth/logout-everywhere"); } finally { location.href = "/login"; }
    });
  });
  return { formatTimes, formatOverdue, send, fmt };
})();
