// The advocate console: the advocate's own state and current call, read from
// the API every second; going available or away, adding an interpreter, and
// ending wrap-up with the call's disposition.
"use strict";

(() => {
  const {el, duration, label, api, LANGUAGES, CALL_TYPES, STATES} = Hotline;
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 1000;

  let advocateId = null;
  let advocate = null;   // GET /advocates/{id}
  let call = null;       // GET /calls/{id} of advocate.call
  let languages = [];    // what the interpreter providers serve
  let dispositions = {};  // id -> label
  let timer = null;
  let shown = null;  // the state and call the message is about

  const path = (...parts) => "/" + parts.map(encodeURIComponent).join("/");

  function say(text, kind) {
    $("message").textContent = text;
    $("message").className = "message " + (kind || "");
  }

  function showLanguages() {
    const filter = $("language-filter").value.trim().toLowerCase();
    const options = [el("option", {value: ""}, "Operator (language not known)")];
    for (const language of languages) {
      const text = language.native && language.native !== language.name
        ? `${language.name} — ${language.native} (${language.code})` : `${language.name} (${language.code})`;
      if (!filter || text.toLowerCase().includes(filter)) {
        options.push(el("option", {value: language.code}, text));
      }
    }
    $("language").replaceChildren(...options);
  }

  function showDispositions() {
    $("dispositions").replaceChildren(...Object.entries(dispositions).map(([id, text]) =>
      el("label", {class: "choice"}, el("input", {type: "radio", name: "disposition", value: id}), text)));
  }

  function render() {
    const state = advocate.state;
    $("who").textContent = advocate.name || advocate.id;
    $("state").textContent = label(STATES, state);
    $("state").className = `state state-${state}`;
    $("state-for").textContent = duration(Date.now() - advocate.state_since * 1000);
    // During wrap-up the way out is "End wrap-up", with the call's disposition.
    const busy = state === "ringing" || state === "on_call" || state === "wrap_up";
    $("go-available").disabled = busy || state === "available";
    $("go-away").disabled = busy || state === "away";
    $("go-offline").disabled = busy || state === "offline";

    if (`${state} ${advocate.call}` !== shown) {
      shown = `${state} ${advocate.call}`;
      say("");  // what was said was about what went before
    }
    $("call").hidden = !(advocate.call && call);
    if (advocate.call && call) {
      $("call-title").textContent = {ringing: "Incoming call", on_call: "On the call",
                                     wrap_up: "Call ended"}[state] || "Call";
      $("call-language").textContent = label(LANGUAGES, call.language);
      $("call-type").textContent = label(CALL_TYPES, call.call_type);
      $("call-relay").textContent = call.relay === "1" ? "Yes: a relay operator types or voices each side" : "No";
      $("call-waited").textContent = call.waited_ms !== undefined
        ? duration(Number(call.waited_ms))
        : duration(Date.now() - Number(call.arrival_ms)) + " and counting";
      $("call-queue").textContent = call.queue || "";
    }
    $("interpreter").hidden = !(state === "on_call" && languages.length);
    $("wrapup").hidden = state !== "wrap_up";
    if (state !== "wrap_up") {
      for (const radio of document.querySelectorAll("input[name=disposition]")) radio.checked = false;
      $("end-wrap-up").disabled = true;
    }
  }

  let reads = 0;

  async function refresh() {
    // A read that started before a newer one (the poll racing an action's
    // own refresh) must not draw an older state over it.
    const mine = ++reads;
    try {
      const latest = await api("GET", path("advocates", advocateId));
      let latestCall = null;
      if (latest.call) {
        try {
          latestCall = await api("GET", path("calls", latest.call));
        } catch (error) {
          // 403 or 404: the call moved on between the two reads (a ring not
          // taken goes back to the queue); the next read shows where things are.
          if (!(error instanceof Hotline.ApiError) || error.status === 401) throw error;
        }
      }
      if (mine !== reads) return;
      advocate = latest;
      call = latestCall;
      render();
    } catch (error) {
      if (error instanceof Hotline.ApiError && (error.status === 401 || error.status === 403)) {
        signOut(error.message);
        return;
      }
      say(`Cannot reach the engine (${error.message}); retrying`, "error");
    }
  }

  async function act(action, body, done) {
    try {
      advocate = await api("POST", path("advocates", advocateId, action), body);
      await refresh();
      say(done, "ok");
    } catch (error) {
      say(error.message, "error");
    }
  }

  function signOut(why) {
    clearInterval(timer);
    Hotline.signOut();
    advocateId = advocate = call = shown = null;
    $("desk").hidden = true;
    $("signout").hidden = true;
    $("signin").hidden = false;
    $("who").textContent = "";
    $("signin-error").textContent = why || "";
  }

  $("signin").addEventListener("submit", async (event) => {
    event.preventDefault();
    Hotline.signIn($("token").value);
    $("token").value = "";
    advocateId = $("advocate").value.trim();
    try {
      advocate = await api("GET", path("advocates", advocateId));
      dispositions = Object.fromEntries((await api("GET", "/dispositions")).dispositions.map((d) => [d.id, d.label]));
      try {
        languages = (await api("GET", "/interpreters/languages")).languages;
      } catch (error) {
        languages = [];  // no interpreter provider configured
      }
    } catch (error) {
      signOut(error.message);
      return;
    }
    showDispositions();
    showLanguages();
    $("signin").hidden = true;
    $("signin-error").textContent = "";
    $("desk").hidden = false;
    $("signout").hidden = false;
    say("");
    render();
    timer = setInterval(refresh, POLL_MS);
  });

  $("signout").addEventListener("click", () => signOut(""));
  $("go-available").addEventListener("click", () => act("available", undefined, "You are available for calls"));
  $("go-away").addEventListener("click", () => act("away", undefined, "You are away: no calls are offered"));
  $("go-offline").addEventListener("click", () => act("logout", undefined, "You are logged out"));
  $("language-filter").addEventListener("input", showLanguages);

  $("add-interpreter").addEventListener("click", async () => {
    const code = $("language").value;
    try {
      const reply = await api("POST", path("calls", advocate.call, "interpreter"), code ? {language: code} : {});
      const chosen = languages.find((l) => l.code === reply.interpreter);
      say(`${chosen ? chosen.name : "Operator"} interpreter joining…`, "ok");
    } catch (error) {
      say(error.message, "error");
    }
  });

  $("remove-interpreter").addEventListener("click", async () => {
    try {
      await api("DELETE", path("calls", advocate.call, "interpreter"));
      say("Interpreter leaving", "ok");
    } catch (error) {
      say(error.message, "error");
    }
  });

  $("dispositions").addEventListener("change", () => { $("end-wrap-up").disabled = false; });

  $("end-wrap-up").addEventListener("click", () => {
    const chosen = document.querySelector("input[name=disposition]:checked");
    if (!chosen) return;
    act("end-wrap-up", {disposition: chosen.value}, `Recorded as ${dispositions[chosen.value]}; you are available`);
  });
})();
