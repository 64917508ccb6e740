// The dashboard kept live: /dashboard.json every 2 s rebuilds the tables; wait times count
// up every second in between. No inline script (the console's CSP).
(function () {
  "use strict";
  var root = document.getElementById("dashboard");
  if (!root) { return; }
  var csrf = document.body.getAttribute("data-csrf");
  var canAct = root.getAttribute("data-can-act") === "yes";
  var isAdmin = root.getAttribute("data-admin") === "yes";
  var banner = document.getElementById("connection");
  var skew = 0; // server time - our clock (ms), so wait times count from the server's clock

  function el(tag, attrs, content) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (content != null) { e.textContent = String(content); }
    return e;
  }
  function td(content) { return el("td", {}, content == null ? "" : content); }
  function local(iso) { if (!iso) { return ""; } var d = new Date(iso); return isNaN(d.getTime()) ? iso : d.toLocaleString(); }
  function postForm(cls, action, label, text) {
    var f = el("form", {"class": cls, method: "post", action: action});
    f.appendChild(el("input", {type: "hidden", name: "csrf_token", value: csrf}));
    var b = el("button", {type: "submit", "aria-label": label}, text);
    f.appendChild(b);
    return f;
  }
  function fill(tableId, rows, empty, cols) {
    var body = document.getElementById(tableId).tBodies[0];
    if (body.contains(document.activeElement)) { return; } // do not pull a focused button away
    body.textContent = "";
    if (!rows.length) {
      var tr = el("tr", {"class": "none"});
      var cell = el("td", {colspan: String(cols), "class": "muted"}, empty);
      tr.appendChild(cell);
      body.appendChild(tr);
    }
    return body;
  }
  function render(data) {
    skew = new Date(data.at).getTime() - Date.now();
    document.getElementById("waiting-count").textContent = String(data.waiting.length);
    var body = fill("waiting", data.waiting, "Nobody is waiting.", 6);
    if (body) {
      data.waiting.forEach(function (w) {
        var tr = el("tr", {"data-reference": w.reference, "data-call-id": String(w.call_id)});
        if (w.emergency) { tr.className = "emergency"; }
        [w.position, w.reference, w.caller_number, local(w.queued_at)].forEach(function (v) { tr.appendChild(td(v)); });
        tr.firstChild.className = "position";
        tr.appendChild(el("td", {"class": "wait", "data-queued-at": w.queued_at}, w.wait_seconds));
        tr.appendChild(td(w.emergency ? "Emergency (*9)" : ""));
        body.appendChild(tr);
      });
    }
    body = fill("desks", data.desks, "", canAct ? 7 : 6);
    if (body) {
      data.desks.forEach(function (d) {
        var tr = el("tr", {"data-desk": d.desk, "data-state": d.state});
        tr.appendChild(td(d.desk));
        tr.appendChild(el("td", {"class": "state"}, d.state));
        tr.appendChild(td(local(d.state_since)));
        tr.appendChild(td(d.signed_out ? "signed out" : d.paused ? "paused" + (d.pause_reason ? " (" + d.pause_reason + ")" : "") : "no"));
        tr.appendChild(td(d.console_user || "—"));
        tr.appendChild(td(d.outcome_owed ? "yes: " + (d.outcome_owed_reference || "?") : "no"));
        if (canAct) {
          var cell = el("td", {"class": "actions"});
          var base = "/dashboard/desks/" + encodeURIComponent(d.desk) + "/";
          cell.appendChild(postForm("pause", base + "pause", "Pause " + d.desk, "Pause"));
          cell.appendChild(postForm("available", base + "available", "Make " + d.desk + " available", "Available"));
          if (isAdmin) { cell.appendChild(postForm("release", base + "release", "Release " + d.desk + " without its outcome", "Release")); }
          tr.appendChild(cell);
        }
        body.appendChild(tr);
      });
    }
    body = fill("callbacks", data.callbacks, "No callbacks to make.", 5);
    if (body) {
      data.callbacks.forEach(function (c) {
        var tr = el("tr", {"data-callback-id": String(c.id)});
        [local(c.created_at), c.reference, c.caller_number, c.digits_entered || "—"].forEach(function (v) { tr.appendChild(td(v)); });
        if (canAct) {
          var cell = el("td", {});
          cell.appendChild(postForm("callback", "/dashboard/callbacks/" + c.id, "Call " + c.reference + " back from my desk", "Call back from my desk"));
          tr.appendChild(cell);
        }
        body.appendChild(tr);
      });
    }
    var t = data.today;
    function count(name, value) { var e = document.querySelector('#today [data-count="' + name + '"]'); if (e) { e.textContent = value; } }
    ["day", "calls", "answered", "abandoned", "callbacks", "outcomes_owed"].forEach(function (k) { count(k, String(t[k])); });
    count("by_result", Object.keys(t.by_result).map(function (k) { return k + ": " + t.by_result[k]; }).join(", "));
    var outs = Object.keys(t.by_outcome);
    count("by_outcome", outs.length ? outs.map(function (k) { return t.by_outcome_words[k] + ": " + t.by_outcome[k]; }).join(", ") : "none yet");
  }
  function tick() {
    var nowMs = Date.now() + skew;
    Array.prototype.forEach.call(document.querySelectorAll("#waiting .wait"), function (cell) {
      var since = new Date(cell.getAttribute("data-queued-at")).getTime();
      if (!isNaN(since)) { cell.textContent = String(Math.max(0, Math.floor((nowMs - since) / 1000))); }
    });
  }
  function refresh() {
    fetch("/dashboard.json", {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then(function (r) {
        if (r.status === 401) { window.location.href = "/login?next=/dashboard"; return null; }
        if (!r.ok) { throw new Error(String(r.status)); }
        return r.json();
      })
      .then(function (data) {
        if (!data) { return; }
        if (banner) { banner.hidden = true; banner.textContent = ""; }
        render(data);
        tick();
      })
      .catch(function () {
        if (banner) { banner.textContent = "Database unavailable — showing the last known state"; banner.hidden = false; }
      });
  }
  var at = new Date(root.getAttribute("data-at")).getTime();
  if (!isNaN(at)) { skew = at - Date.now(); }
  window.setInterval(refresh, 2000);
  window.setInterval(tick, 1000);
})();
