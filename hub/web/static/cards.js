// The dorm manager's card page: issue, replace, suspend/return/revoke, CSV upload.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const list = document.getElementById("residents");
  const shown = (id, text) => { const el = document.getElementById(id); el.textContent = text; el.hidden = false; };
  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const item = button.closest("[data-card]");
    const path = `/api/v1/cards/${encodeURIComponent(item.dataset.card)}`;
    const action = button.dataset.action;
    try {
      if (action === "replace") {
        const number = prompt(list.dataset.askNumber);
        if (!number) return;
        await diaolou.send("POST", `${path}/replace`, { card_number: number.trim(), card_format: item.dataset.format });
      } else {
        if (action === "revoked" && !confirm(list.dataset.confirm)) return;
        await diaolou.send("POST", `${path}/state`, { state: action });
      }
      location.reload();
    } catch (e) {
      shown("card-error", e.message);
    }
  });
  const form = document.getElementById("issue-card");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const until = data.get("valid_until");
    const uses = data.get("max_uses");
    try {
      await diaolou.send("POST", "/api/v1/cards", {
        employee_no: data.get("employee_no").trim(), name: data.get("name").trim(), company: data.get("company").trim(),
        building: data.get("building"), room: data.get("room").trim(), phone: data.get("phone").trim(),
        kind: data.get("visitor") ? "visitor" : "resident", card_number: data.get("card_number").trim(),
        card_format: data.get("card_format"), valid_until: until ? new Date(until).getTime() / 1000 : null,
        max_uses: uses ? Number(uses) : null,
      });
      location.reload();
    } catch (e) {
      shown("issue-error", e.message);
    }
  });
  const upload = document.getElementById("import-csv");
  upload.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = upload.querySelector("input[type=file]").files[0];
    if (!file) return;
    const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
    const response = await fetch(`/api/v1/cards/import?filename=${encodeURIComponent(file.name)}`, {
      method: "POST", body: file, credentials: "same-origin",
      headers: { "X-CSRF-Token": meta("csrf"), "Content-Type": "text/csv" },
    });
    const body = await response.json();
    if (!response.ok) {
      document.getElementById("import-done").hidden = true;
      shown("import-error", body.detail);
      return;
    }
    document.getElementById("import-error").hidden = true;
    shown("import-done", `${document.getElementById("import-done").textContent}: ${body.residents} / ${body.cards}`);
  });
});
