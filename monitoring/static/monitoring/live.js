/* Live dashboard: server-sent events from /dashboard/live/, polling /dashboard/live/state/ as the fallback.
   One message per server tick carries the services, instances and checks whose status changed, the counts,
   the newest events and the top alerts; this script patches the page in place (no reload). No library, no CDN. */
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

  var dashboardUrl = body.getAttribute("data-dashboard-url") || "/dashboard/";

  function text(tag, value) {
    var el = document.createElement(tag);
    el.textContent = value;
    return el;
  }

  function target(alert) {
    // The target as the page names it (its label), linked to its service page when it has one.
    if (!alert.service) return document.createTextNode(alert.target);
    var a = text("a", alert.target);
    a.href = dashboardUrl + "services/" + encodeURIComponent(alert.service) + "/";
    return a;
  }

  function alertCells(alert, withStatus) {
    var cells = [];
    if (withStatus) {
      var status = document.createElement("td");
      status.appendChild(badge(alert.status));
      if (alert.flapping) { status.appendChild(document.createTextNode(" ")); status.appendChild(badge("flapping")); }
      cells.push(status);
    }
    var rule = text("td", alert.rule + " ");
    if (withStatus) rule.appendChild(text("small", alert.severity));
    var where = document.createElement("td");
    where.appendChild(target(alert));
    cells.push(rule, where, text("td", alert.value === null || alert.value === undefined ? "" : String(alert.value)),
      text("td", (alert.since || "").substring(0, 16).replace("T", " ")));
    return cells;
  }

  function patchAlerts(list) {
    // The overview's "firing and pending" list: firing first, then pending, 10 at most (as the server renders it).
    var overview = document.querySelector('[data-live-alerts="overview"]');
    if (overview) {
      var rows = list.firing.concat(list.pending).slice(0, 10);
      overview.replaceChildren();
      rows.forEach(function (alert) {
        var li = document.createElement("li");
        li.appendChild(badge(alert.status));
        li.appendChild(document.createTextNode(" "));
        li.appendChild(text("b", alert.rule));
        li.appendChild(document.createTextNode(" "));
        li.appendChild(target(alert));
        if (alert.flapping) { li.appendChild(document.createTextNode(" ")); li.appendChild(badge("flapping")); }
        overview.appendChild(li);
      });
      if (!rows.length) overview.appendChild(text("li", "None."));
    }
    // The alerts page's first page of each table (only unsearched first pages say data-live-alerts).
    [["firing", "Nothing firing."], ["pending", "Nothing pending."]].forEach(function (pair) {
      var tbody = document.querySelector('[data-live-alerts="' + pair[0] + '"]');
      if (!tbody) return;
      tbody.replaceChildren();
      list[pair[0]].forEach(function (alert) {
        var tr = document.createElement("tr");
        alertCells(alert, true).forEach(function (td) { tr.appendChild(td); });
        tbody.appendChild(tr);
      });
      if (!list[pair[0]].length) {
        var tr = document.createElement("tr");
        var td = text("td", pair[1]);
        td.colSpan = 5;
        tr.appendChild(td);
        tbody.appendChild(tr);
      }
    });
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
    if (payload.alerts) {
      Object.keys(payload.alerts).forEach(function (status) {
        document.querySelectorAll('[data-alert-count="' + status + '"]').forEach(function (el) {
          el.textContent = payload.alerts[status];
        });
      });
    }
    if (payload.alert_list) patchAlerts(payload.alert_list);
    // The service page's instance and check status cells.
    Object.keys(payload.instances || {}).forEach(function (key) {
      document.querySelectorAll(".inst-status").forEach(function (el) {
        if (el.getAttribute("data-instance-key") === key) el.replaceChildren(badge(payload.instances[key]));
      });
    });
    Object.keys(payload.checks || {}).forEach(function (id) {
      document.querySelectorAll('[data-check-id="' + id + '"]').forEach(function (el) {
        el.replaceChildren(badge(payload.checks[id]));
      });
    });
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
