// The supervisors' wallboard: the engine sends the board (GET /wallboard/events,
// server-sent events) whenever it changes; waits and times in state are
// counted here every second against the server's clock.
"use strict";

(() => {
  const {el, duration, label, LANGUAGES, CALL_TYPES, STATES} = Hotline;
  const $ = (id) => document.getElementById(id);
  let skewMs = 0;  // server clock minus this browser's
  let stop = null;

  const serverNow = () => Date.now() + skewMs;

  function percent(share) {
    return share === null || share === undefined ? "—" : `${Math.round(share * 100)}%`;
  }

  function figure(name, value, extra, key) {
    return el("div", {class: "figure" + (extra ? " " + extra : ""), dataset: {count: key || name}},
              el("span", {class: "value"}, value), el("span", {class: "name"}, name));
  }

  function todayFigures(counts, target) {
    return [
      figure("offered", counts.offered),
      figure("answered", counts.answered),
      figure("abandoned", counts.abandoned, counts.abandoned ? "warn" : ""),
      figure(target ? `answered within ${target} s` : "service level", percent(counts.service_level), "",
             "service_level"),
    ];
  }

  // A time counted on the page: `since` epoch ms; over `limitS` seconds it turns red.
  function since(ms, limitS) {
    return el("span", {class: "since", dataset: limitS ? {since: ms, limit: limitS} : {since: ms}},
              duration(serverNow() - ms));
  }

  function queueCard(queue) {
    const oldest = queue.waiting.length ? Math.min(...queue.waiting.map((c) => c.arrival_ms)) : null;
    const rows = queue.waiting.map((call) => el("tr", {class: "call" + (call.crisis ? " crisis" : ""),
                                                       dataset: {call: call.id}},
      el("td", {}, since(call.arrival_ms, queue.target_s)),
      el("td", {}, label(LANGUAGES, call.language)),
      el("td", {}, call.crisis ? el("span", {class: "badge crisis"}, label(CALL_TYPES, call.call_type))
                               : label(CALL_TYPES, call.call_type)),
      el("td", {}, call.relay ? el("span", {class: "badge relay"}, "Relay") : "")));
    const calls = rows.length
      ? el("table", {class: "calls"},
           el("thead", {}, el("tr", {}, el("th", {}, "Waited"), el("th", {}, "Language"), el("th", {}, "Call type"),
                               el("th", {}, "Relay"))),
           el("tbody", {}, ...rows))
      : el("p", {class: "quiet"}, "No calls waiting");
    return el("article", {class: "queue" + (queue.waiting.length && !queue.available ? " unstaffed" : ""),
                          dataset: {queue: queue.name}},
      el("h2", {}, queue.name),
      el("div", {class: "now"},
         figure("waiting", queue.waiting.length, queue.waiting.length ? "warn" : ""),
         figure("longest wait", oldest === null ? "—" : since(oldest, queue.target_s)),
         figure("available", queue.available, queue.waiting.length && !queue.available ? "alarm" : "")),
      calls,
      el("h3", {}, "Today"),
      el("div", {class: "today", dataset: {today: queue.name}}, ...todayFigures(queue.today, queue.target_s)));
  }

  function render(view) {
    $("day").textContent = `Today, ${view.day}`;
    $("today").replaceChildren(el("h2", {}, "All queues today"), ...todayFigures(view.today));
    $("queues").replaceChildren(...view.queues.map(queueCard));
    $("states").replaceChildren(...Object.entries(view.states).map(([state, n]) =>
      el("span", {class: `state-count state-${state}`, dataset: {state}}, `${label(STATES, state)} ${n}`)));
    $("advocates").replaceChildren(...view.advocates.map((a) => el("tr", {dataset: {advocate: a.id}},
      el("td", {}, a.name || a.id),
      el("td", {}, el("span", {class: `state state-${a.state}`}, label(STATES, a.state))),
      el("td", {}, since(a.since_ms)),
      el("td", {class: "skills"}, a.skills.join(" ")))));
  }

  function tick() {
    for (const node of document.querySelectorAll("[data-since]")) {
      const elapsed = serverNow() - Number(node.dataset.since);
      node.textContent = duration(elapsed);
      if (node.dataset.limit) node.classList.toggle("over", elapsed > Number(node.dataset.limit) * 1000);
    }
  }

  function status(text, kind) {
    $("connection").textContent = text;
    $("connection").className = "connection " + (kind || "");
  }

  async function follow(signal) {
    let delay = 1000;
    while (!signal.aborted) {
      try {
        await Hotline.stream("/wallboard/events", (name, data) => {
          if (name === "board") {
            skewMs = data.now_ms - Date.now();
            render(data);
            tick();
            status("live", "live");
            $("board").hidden = false;
            delay = 1000;
          } else if (name === "unavailable") {
            status("routing store unavailable", "down");
          }
        }, signal);
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof Hotline.ApiError && (error.status === 401 || error.status === 403)) {
          signOut(error.message);
          return;
        }
      }
      status("reconnecting…", "down");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }

  function signOut(why) {
    Hotline.signOut();
    $("board").hidden = true;
    $("signin").hidden = false;
    $("signin-error").textContent = why || "";
    status("signed out", "");
  }

  $("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    Hotline.signIn($("token").value);
    $("token").value = "";
    $("signin").hidden = true;
    $("signin-error").textContent = "";
    status("connecting…", "");
    if (stop) stop.abort();
    stop = new AbortController();
    follow(stop.signal);
  });

  setInterval(tick, 1000);
})();
