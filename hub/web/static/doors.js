// The door board: drawn from /api/v1/doors/board/stream, whose first `board` event is the whole
// board and every later one the board again after a change (a door opened, an alarm came, someone
// acknowledged one, a gate box fell behind). One way of drawing it, no reload.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("board");
  if (!root) return;
  const words = JSON.parse(root.dataset.words);
  const w = (key, fallback) => words[key] || fallback || key;
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const when = (t) => {
    const time = el("time");
    time.dataset.t = t;
    return time;
  };

  function door(d) {
    const li = el("li", `door ${d.state}${d.open_alarms ? " alarmed" : ""}`);
    li.dataset.door = `${d.site}/${d.device}/${d.door}`;
    li.dataset.state = d.state;
    li.append(el("strong", "", d.door));
    const state = el("span", "state", w(`door_${d.state}`, d.state));
    li.append(state);
    if (d.since) {
      const since = el("div", "meta", `${w("door_since")} `);
      since.append(when(d.since));
      li.append(since);
    }
    if (d.last_decision) {
      const x = d.last_decision;
      const text = x.granted ? w("granted") : `${w("denied")} · ${w(`reason_${x.reason}`, x.reason)}`;
      const swipe = el("div", "meta", `${w("last_swipe")}${text} · `);
      swipe.append(when(x.time));
      li.append(swipe);
    }
    if (d.open_alarms) li.append(el("div", "alarm-count", `${w("open_alarms")} ${d.open_alarms}`));
    li.append(el("div", "meta", d.device));
    return li;
  }

  function alarm(a) {
    const li = el("li", `card alarm${a.ack ? " acked" : ""}`);
    li.dataset.alarm = a.id;
    const caption = el("div", "caption");
    caption.append(el("strong", "", w(`alarm_${a.alarm}`, a.alarm)), " ", el("span", "meta", `${a.building} · ${a.door} · `));
    caption.lastChild.append(when(a.time));
    li.append(caption);
    if (a.why) li.append(el("div", "meta", a.why));
    if (a.ack) {
      const by = el("div", "meta", `${w("acknowledged_by")}${a.ack.by} · `);
      by.append(when(a.ack.at));
      if (a.ack.note) by.append(` · ${a.ack.note}`);
      li.append(by);
    } else {
      const actions = el("div", "actions");
      const button = el("button", "", w("acknowledge"));
      button.type = "button";
      button.dataset.action = "ack";
      actions.append(button);
      li.append(actions);
    }
    return li;
  }

  function gate(g) {
    const li = el("li", "card gate");
    li.dataset.gate = `${g.site}/${g.device}`;
    li.append(el("strong", "", `${g.site} · ${g.device}`), " ", el("span", "meta", g.buildings.join(", ")));
    const reported = g.reported_version === null ? "–" : g.reported_version;
    li.append(el("div", "", `${g.behind} ${w("changes_behind")} (${w("list_version")} ${reported} / ${g.latest_version})`));
    if (g.stale_since) {
      const since = el("div", "meta", `${w("stale_since")} `);
      since.append(when(g.stale_since));
      li.append(since);
    }
    li.append(el("span", `badge ${g.online ? "ok" : "bad"}`, g.online ? w("online") : w("offline")));
    return li;
  }

  function draw(board) {
    const stale = board.gates.filter((g) => g.stale);
    document.getElementById("stale-gates").hidden = stale.length === 0;
    document.getElementById("stale-list").replaceChildren(...stale.map(gate));
    const alarms = document.getElementById("alarms");
    alarms.replaceChildren(...(board.alarms.length ? board.alarms.map(alarm) : [el("li", "empty", w("no_door_alarms"))]));
    const buildings = board.buildings.map((b) => {
      const section = el("section", "building");
      section.dataset.building = b.building;
      section.append(el("h2", "", b.building));
      const list = el("ul", "doors");
      list.append(...b.doors.map(door));
      section.append(list);
      return section;
    });
    document.getElementById("buildings").replaceChildren(...(buildings.length ? buildings : [el("p", "empty", w("no_doors"))]));
    diaolou.formatTimes(root);
  }

  document.getElementById("alarms").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action=ack]");
    if (!button) return;
    const id = button.closest("[data-alarm]").dataset.alarm;
    const note = prompt(w("ack_note_prompt"), "");
    if (note === null) return;
    const error = document.getElementById("ack-error");
    error.hidden = true;
    button.disabled = true;
    try {
      await diaolou.send("POST", `/api/v1/doors/alarms/${encodeURIComponent(id)}/ack`, { note });
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      button.disabled = false;
    }
    // The stream brings the board with the alarm acknowledged: no redraw here.
  });

  const offline = document.getElementById("board-offline");
  const source = new EventSource("/api/v1/doors/board/stream");
  source.addEventListener("board", (message) => {
    offline.hidden = true;
    draw(JSON.parse(message.data));
  });
  source.addEventListener("error", () => { offline.hidden = false; });
});
