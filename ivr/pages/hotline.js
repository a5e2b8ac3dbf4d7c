// Shared by the wallboard and the advocate console.
//
// The token is kept in this page's memory only (not in a cookie, storage or
// a URL) and sent in the Authorization header. Everything the engine sends
// is put on the page as text (textContent), never parsed as HTML.
"use strict";

const Hotline = (() => {
  let token = null;

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function signIn(value) { token = value.trim(); }
  function signOut() { token = null; }

  function headers(extra) {
    return Object.assign({"Authorization": "Bearer " + token}, extra || {});
  }

  async function api(method, path, body) {
    const init = {method, headers: headers(), cache: "no-store", credentials: "omit"};
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      throw new ApiError(response.status, (data && data.error) || response.statusText);
    }
    return data;
  }

  // Server-sent events read with fetch(): EventSource cannot send an
  // Authorization header. Calls onEvent(name, data) for each event and
  // returns when the stream ends; throws ApiError on a refusal.
  async function stream(path, onEvent, signal) {
    const response = await fetch(path, {headers: headers({"Accept": "text/event-stream"}), cache: "no-store",
                                        credentials: "omit", signal});
    if (!response.ok) {
      let data = null;
      try { data = await response.json(); } catch (e) { data = null; }
      throw new ApiError(response.status, (data && data.error) || response.statusText);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trim());
        }
        if (data.length) onEvent(name, JSON.parse(data.join("\n")));
      }
    }
  }

  // h:mm:ss or m:ss
  function duration(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
    const two = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
  }

  // el("td", {class: "x", dataset: {call: id}}, "text", childNode...)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // What callers chose in the menu (dialplans/menu.toml), in words.
  const LANGUAGES = {en: "English", es: "Spanish", other: "Other language"};
  const CALL_TYPES = {crisis: "Crisis", tip: "Tip", referral: "Referral", training: "Training",
                      information: "Information", other: "Other"};
  const STATES = {available: "Available", ringing: "Ringing", on_call: "On a call", wrap_up: "Wrap-up",
                  away: "Away", offline: "Offline"};
  const label = (table, value) => table[value] || value || "—";

  return {ApiError, signIn, signOut, api, stream, duration, el, label, LANGUAGES, CALL_TYPES, STATES};
})();
