/* Live dashboard: server-sent events from /dashboard/live/, polling /dashboard/live/state/ as the fallback.
   One message per server tick carries the services whose status changed, the counts and the newest events;
   this script patches the page in place (no reload). No library, no CDN. */
(function () {
  "use strict";
  var body = document.body;
  var liveUrl = body.getAttribute("data-live-url");
  var stateUrl = body.getAttribute("data-state-url");
  var indicator = document.getElementById("live-indicator");
  var ICONS = {passing: "\u2714", warning: "\u25B2", critical: "\u2716", maintenance: "\u2016", unknown: "?",
    firing: "!", pending: "\u2026", resolved: "\u2713", flapping: "\u21C5", inactive: "\u2013"};
  // The newest event when the page's data was read: every change after it is applied, by the stream or a poll.
  // 0 is a real position (the log was empty): event 1 is a change. null: the page did not say, ask for a baseline.
  var lastAttr = body.getAttribute("data-last-event");
  var last = lastAttr === null || lastAttr === "" ? null : parseInt(lastAttr, 10);
  if (isNaN(last)) last = null;
  var pollTimer = null;

  function setIndicator(state, text) {
    if (!indicator) return;
    indicator.setAttribute("data-state", state);
    indicator.textContent = text;
  }

  function badge(status) {
    var span = document.createElement("span");
    span.className = "st st-" + status;
    span.setAttribute("data-status", status);
    var icon = document.createElement("span");
    icon.setAttribute("aria-hidden", "true");
    icon.textContent = ICONS[status] || "?";
    span.appendChild(icon);
    span.appendChild(document.createTextNode(" " + status));
    return span;
  }

  function apply(payload) {
    if (!payload) return;
    if (payload.last_event && (last === null || payload.last_event > last)) last = payload.last_event;
    if (payload.reload) { window.location.reload(); return; }
    (payload.services || []).forEach(function (svc) {
      document.querySelectorAll('[data-service-id="' + svc.id + '"]').forEach(function (el) {
        var cell = el.classList.contains("svc-status") ? el : el.querySelector(".svc-status");
        if (!cell) return;
        cell.replaceChildren(badge(svc.status));
        el.setAttribute("data-live-status", svc.status);
        var counts = el.querySelector(".svc-instances");
        if (counts) {
          counts.textContent = svc.passing + "/" + svc.instances + " passing" + (svc.critical ? ", " + svc.critical + " critical" : "");
        }
      });
    });
    var counts = payload.counts || {};
    Object.keys(counts).forEach(function (group) {
      Object.keys(counts[group]).forEach(function (status) {
        var el = document.querySelector('[data-count="' + group + "-" + status + '"]');
        if (el) el.textContent = counts[group][status];
      });
    });
    var alerts = document.getElementById("live-alerts");
    if (alerts && payload.alerts) {
      alerts.textContent = payload.alerts.firing ? "(" + payload.alerts.firing + " firing)" : "";
    }
    var list = document.getElementById("events");
    if (list && payload.events) {
      payload.events.forEach(function (ev) {
        var li = document.createElement("li");
        var time = document.createElement("time");
        time.textContent = (ev.at || "").substring(11, 19);
        li.appendChild(time);
        li.appendChild(document.createTextNode(" " + ev.kind + " " + ev.subject));
        list.insertBefore(li, list.firstChild);
      });
      while (list.children.length > 10) list.removeChild(list.lastChild);
    }
    var transitions = document.getElementById("transitions");
    if (transitions && payload.events) {
      payload.events.forEach(function (ev) {
        if (!ev.new) return;
        Array.prototype.slice.call(transitions.children).forEach(function (item) {
          if (!item.querySelector("time")) item.remove();  // the "None yet." line
        });
        var li = document.createElement("li");
        var time = document.createElement("time");
        time.textContent = (ev.at || "").substring(11, 19);
        li.appendChild(time);
        li.appendChild(document.createTextNode(" " + ev.subject + " "));
        li.appendChild(badge(ev.old));
        li.appendChild(document.createTextNode(" \u2192 "));
        li.appendChild(badge(ev.new));
        transitions.insertBefore(li, transitions.firstChild);
      });
      while (transitions.children.length > 10) transitions.removeChild(transitions.lastChild);
    }
  }

  function catchUp() {
    return fetch(stateUrl + (last === null ? "" : "?since=" + last), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (payload) {
        if (!payload) return;
        if (last === null) { last = payload.last_event; return; }
        if (payload.changed) apply(payload); else if (payload.last_event > last) last = payload.last_event;
        if (indicator) indicator.setAttribute("data-last-event", last);
      });
  }

  function poll() {
    if (pollTimer) return;
    setIndicator("polling", "live (polling)");
    pollTimer = window.setInterval(function () {
      catchUp().catch(function () { setIndicator("offline", "offline"); });
    }, 1500);
  }

  if (!window.EventSource || !liveUrl) { poll(); return; }
  var source = new EventSource(liveUrl);
  source.addEventListener("hello", function (e) {
    var from = JSON.parse(e.data).last_event;
    setIndicator("live", "● live");
    // Changes stored between the page's read and the stream's start: fetch them once, then the stream follows.
    if (last === null || from > last) { catchUp().then(function () { if (last === null || from > last) last = from; }); }
  });
  source.addEventListener("update", function (e) { apply(JSON.parse(e.data)); });
  source.onerror = function () {
    // CLOSED: the server refused the stream (204 under WSGI, 403 after sign-out): poll instead.
    if (source.readyState === EventSource.CLOSED) { poll(); } else { setIndicator("connecting", "reconnecting…"); }
  };
})();
