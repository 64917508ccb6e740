// The desk page kept live: the screen-pop from the SSE stream (/desk/stream), the desk's
// state polled from /desk/state.json every second, the outcome posted with fetch.
// No framework, no inline script (the console's CSP): docs/console.md "Desk and screen-pop".
(function () {
  "use strict";
  var csrf = document.body.getAttribute("data-csrf");
  var banner = document.getElementById("connection");
  var pop = document.getElementById("screen-pop");
  var databaseDown = false; // the stream's status events say so
  var databaseDownPoll = false; // the state poll got 503
  var streamDown = false;
  var pollDown = false;
  var PHASES = {ringing: "ringing", answered: "answered", ended: "ended",
                cleared: "left your desk", empty: ""};

  function byId(id) { return document.getElementById(id); }
  function text(id, value) { var el = byId(id); if (el) { el.textContent = value == null ? "" : String(value); } }

  function showBanner() {
    if (!banner) { return; }
    if (databaseDown || databaseDownPoll) {
      banner.textContent = "Database unavailable — showing the last known state";
      banner.hidden = false;
    } else if (streamDown || pollDown) {
      banner.textContent = "Live updates lost — reconnecting…";
      banner.hidden = false;
    } else {
      banner.hidden = true;
      banner.textContent = "";
    }
  }

  function localTime(iso) {
    if (!iso) { return ""; }
    var d = new Date(iso);
    return isNaN(d.getTime()) ? iso : d.toLocaleString();
  }

  function render(data) {
    if (!pop) { return; }
    var phase = data.phase || "empty";
    pop.setAttribute("data-phase", phase);
    pop.setAttribute("data-reference", data.reference || "");
    pop.setAttribute("data-call-id", data.call_id == null ? "" : String(data.call_id));
    text("pop-phase", PHASES[phase] || phase);
    byId("pop-body").hidden = false;
    byId("pop-empty").hidden = true;
    var result = byId("pop-result");
    result.className = "result " + (data.result ? data.result.colour : "");
    result.textContent = data.result ? data.result.words : "";
    text("pop-reference", data.reference);
    text("pop-caller", data.caller_number);
    text("pop-digits", data.digits);
    var o = data.officer;
    text("pop-officer-name", o ? o.name : "Not on the roster");
    text("pop-officer-rank", o ? o.rank : "");
    text("pop-officer-unit", o ? o.unit : "");
    text("pop-officer-station", o ? o.station : "");
    text("pop-officer-status", o ? o.status : "");
    text("pop-duty", o ? (o.on_duty_from ? localTime(o.on_duty_from) + " to " + localTime(o.on_duty_until)
                                         : "No duty window") : "");
    var box = byId("pop-photo-box");
    box.textContent = "";
    if (o && o.photo_url) {
      var img = document.createElement("img");
      img.id = "pop-photo";
      img.className = "photo";
      img.width = 160;
      img.alt = "Photo of " + o.name;
      img.src = o.photo_url;
      box.appendChild(img);
    }
    var p = data.preregistration;
    byId("pop-prereg").hidden = !p;
    text("pop-prereg-reference", p ? p.reference : "");
    text("pop-prereg-place", p ? p.place : "");
    text("pop-prereg-purpose", p ? p.purpose : "");
    text("pop-prereg-opened", p ? localTime(p.opened_at) + (p.device ? " by " + p.device : "") : "");
    var flags = byId("pop-flags");
    flags.textContent = "";
    (data.flags || []).forEach(function (f) {
      var li = document.createElement("li");
      li.setAttribute("data-flag", f.flag);
      li.textContent = f.words;
      flags.appendChild(li);
    });
    var body = byId("pop-history").tBodies[0];
    body.textContent = "";
    var history = data.history || {officer: [], caller: []};
    [["officer", "this officer"], ["caller", "this caller"]].forEach(function (pair) {
      (history[pair[0]] || []).forEach(function (h) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-reference", h.reference);
        tr.setAttribute("data-history", pair[0]);
        var cells = [localTime(h.at), null, pair[1], h.caller_number, h.result_words || h.result,
                     h.outcome_words || "None recorded"];
        cells.forEach(function (value, i) {
          var td = document.createElement("td");
          if (i === 1) {
            var a = document.createElement("a");
            a.href = "/encounters/" + encodeURIComponent(h.reference);
            a.textContent = h.reference;
            td.appendChild(a);
          } else {
            td.textContent = value == null ? "" : String(value);
          }
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
    });
    text("pop-outcome", data.outcome_words || "None recorded yet");
    var form = byId("outcome-form");
    var newCall = form.getAttribute("data-call-id") !== String(data.call_id);
    form.setAttribute("action", "/calls/" + encodeURIComponent(data.call_id) + "/outcome");
    form.setAttribute("data-call-id", String(data.call_id));
    if (newCall) { byId("outcome-recorded").hidden = true; }
  }

  function connect() {
    var source = new EventSource("/desk/stream");
    source.addEventListener("hello", function () { streamDown = false; showBanner(); });
    source.addEventListener("screen_pop", function (e) {
      try { render(JSON.parse(e.data)); } catch (err) { /* a bad event must not stop the page */ }
    });
    source.addEventListener("status", function (e) {
      try { databaseDown = JSON.parse(e.data).database === "down"; } catch (err) { return; }
      showBanner();
    });
    source.onerror = function () {
      streamDown = true;
      showBanner();
      if (source.readyState === EventSource.CLOSED) {
        // the server refused (e.g. 503 while the database is down): EventSource gives up
        // on a refusal, so start a new one
        window.setTimeout(connect, 2000);
      }
    };
  }

  function pollState() {
    fetch("/desk/state.json", {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then(function (r) {
        if (r.status === 401) { window.location.href = "/login?next=/desk"; return null; }
        pollDown = false;
        databaseDownPoll = r.status === 503;
        showBanner();
        return r.ok ? r.json() : null;
      })
      .then(function (s) {
        if (!s) { return; }
        if (!s.desk) { window.location.reload(); return; }
        var el = byId("desk-state");
        el.textContent = s.state || "unknown";
        el.setAttribute("data-state", s.state || "unknown");
        byId("wrapup-owed").hidden = !s.outcome_owed;
        text("wrapup-reference", s.outcome_owed_reference || "");
      })
      .catch(function () { pollDown = true; showBanner(); });
  }

  var form = byId("outcome-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var shown = byId("outcome-recorded");
      var action = form.getAttribute("action");
      if (!action) { return; }
      fetch(action, {method: "POST", credentials: "same-origin", body: new FormData(form),
                     headers: {"X-CSRFToken": csrf, Accept: "application/json"}})
        .then(function (r) { return r.json().then(function (j) { return {ok: r.ok, body: j}; }); })
        .then(function (res) {
          shown.hidden = false;
          if (res.ok) {
            shown.className = "ok";
            shown.textContent = "Recorded: " + res.body.words;
            shown.setAttribute("data-outcome", res.body.outcome);
            byId("note").value = "";
            pollState();
          } else {
            shown.className = "error";
            shown.setAttribute("data-error", res.body.error || "");
            shown.textContent = res.body.message || "Not recorded";
          }
        })
        .catch(function () {
          shown.hidden = false;
          shown.className = "error";
          shown.textContent = "Not recorded: the console cannot be reached";
        });
    });
  }

  if (pop) {
    connect();
    pollState();
    window.setInterval(pollState, 1000);
  }
})();
