// The lockers list: commands to the selected lockers through the API's /v1/bulk/… (with the
// session's CSRF token), one result per locker shown in a table.
(function () {
  "use strict";
  var main = document.querySelector("main[data-csrf]");
  var form = document.getElementById("bulk");
  if (!main || !form) { return; }
  var status = document.getElementById("bulk-status");
  var results = document.getElementById("bulk-results");
  var all = document.getElementById("select-all");
  function boxes() { return Array.prototype.slice.call(document.querySelectorAll("input.pick")); }
  function picked() { return boxes().filter(function (b) { return b.checked; }).map(function (b) { return b.value; }); }
  function count() { document.getElementById("picked").textContent = picked().length + " selected"; }
  if (all) {
    all.addEventListener("change", function () {
      boxes().forEach(function (b) { b.checked = all.checked; });
      count();
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target.classList && event.target.classList.contains("pick")) { count(); }
  });
  var action = document.getElementById("bulk-action");
  function show() {
    var kind = action.value;
    Array.prototype.forEach.call(form.querySelectorAll("[data-for]"), function (part) {
      part.hidden = part.getAttribute("data-for").split(" ").indexOf(kind) < 0;
    });
  }
  action.addEventListener("change", show);
  show();
  function cell(row, text, name) {
    var td = document.createElement("td");
    td.textContent = text;
    if (name) { td.className = name; }
    row.appendChild(td);
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var devices = picked();
    var kind = action.value;
    var reason = form.elements.reason.value.trim();
    if (!devices.length) { status.textContent = "Select lockers first."; return; }
    if (!reason) { status.textContent = "Give a reason first."; return; }
    var body = { devices: devices, reason: reason };
    if (kind === "unlock") {
      body.door = Number(form.elements.door.value);
      body.override_occupied = form.elements.override.checked;
    } else if (kind === "configure") {
      ["heartbeat_secs", "open_window_ms", "pulse_ms", "ajar_alarm_secs"].forEach(function (name) {
        body[name] = Number(form.elements[name].value);
      });
    } else if (kind === "revoke" &&
               !window.confirm("Revoke " + devices.length + " lockers? They can never connect again.")) {
      return;
    }
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.textContent = "Sending to " + devices.length + " lockers…";
    results.textContent = "";
    fetch("/v1/bulk/" + kind, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": main.getAttribute("data-csrf") },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (answer) {
        if (!response.ok) {
          var fields = (answer.errors || []).map(function (e) { return e.field + ": " + e.message; });
          status.textContent = (answer.title || "Refused") + ": " + (fields.join("; ") || answer.detail || "");
          return;
        }
        status.textContent = answer.done + " done, " + answer.failed + " not done.";
        answer.results.forEach(function (r) {
          var row = document.createElement("tr");
          row.setAttribute("data-device", r.device_id);
          cell(row, r.device_id);
          cell(row, r.ok ? "done" : "not done", r.ok ? "ok" : "failed");
          cell(row, r.ok ? (r.door || (r.command_id ? "command " + r.command_id : "")) :
            (r.problem.code + ": " + r.problem.detail));
          results.appendChild(row);
        });
      });
    }).catch(function () {
      status.textContent = "The gateway did not answer.";
    }).then(function () { button.disabled = false; });
  });
})();
