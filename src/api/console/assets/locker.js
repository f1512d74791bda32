// A locker's page: its doors kept live by server-sent events, and a maintenance unlock through
// the API (with the session's CSRF token).
(function () {
  "use strict";
  var main = document.querySelector("main[data-locker]");
  if (!main) { return; }
  var id = main.getAttribute("data-locker");
  var csrf = main.getAttribute("data-csrf");
  var result = document.getElementById("result");
  var source = new EventSource("/console/lockers/" + encodeURIComponent(id) + "/live");
  source.addEventListener("doors", function (event) {
    var state = JSON.parse(event.data);
    document.getElementById("presence").textContent =
      state.revoked ? "revoked" : state.online ? "online" : "offline";
    state.doors.forEach(function (door, i) {
      var cell = document.querySelector("li.door[data-door=\"" + door.door + "\"]");
      if (!cell) { return; }
      cell.className = "door " + door.sensor;
      cell.querySelector(".sensor").textContent = door.sensor;
      cell.querySelector(".lock").textContent =
        door.locked === true ? "locked" : door.locked === false ? "unlocked" : "";
      cell.querySelector(".marks").textContent = state.marks[i] || "";
    });
    main.setAttribute("data-live", "yes");
  });
  document.getElementById("doors").addEventListener("click", function (event) {
    var service = event.target.closest("button.service");
    if (service) { backInService(service); return; }
    var button = event.target.closest("button.unlock");
    if (!button) { return; }
    var reason = document.getElementById("reason").value.trim();
    if (!reason) { result.textContent = "Give a reason for the unlock first."; return; }
    var door = button.getAttribute("data-door");
    button.disabled = true;
    result.textContent = "Unlocking door " + door + "…";
    fetch("/v1/devices/" + encodeURIComponent(id) + "/doors/" + door + "/unlock", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify({ reason: reason })
    }).then(function (response) {
      return response.json().then(function (body) {
        result.textContent = response.ok
          ? "Door " + door + ": " + (body.door || body.state || "sent")
          : (body.title || "Refused") + (body.detail ? ": " + body.detail : "");
      });
    }).catch(function () {
      result.textContent = "The gateway did not answer.";
    }).then(function () { button.disabled = false; });
  });
  function call(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (answer) {
        if (!response.ok) {
          throw new Error((answer.title || "Refused") + (answer.detail ? ": " + answer.detail : ""));
        }
        return answer;
      });
    });
  }
  var base = "/v1/devices/" + encodeURIComponent(id);
  document.getElementById("rotate").addEventListener("click", function () {
    if (!window.confirm("Give locker " + id + " a new secret? Its old one works for one more day.")) { return; }
    call(base + "/rotate", {}).then(function (answer) {
      document.getElementById("secret").textContent = answer.secret;
      document.getElementById("credentials").hidden = false;
      result.textContent = "New secret issued; the old one works until " + answer.previous_valid_until + ".";
    }).catch(function (e) { result.textContent = e.message; });
  });
  document.getElementById("revoke").addEventListener("click", function () {
    if (!window.confirm("Revoke locker " + id + "? It can never connect again.")) { return; }
    call(base + "/revoke", {}).then(function () {
      result.textContent = "Locker " + id + " is revoked.";
    }).catch(function (e) { result.textContent = e.message; });
  });
  function backInService(button) {
    var reason = document.getElementById("reason").value.trim();
    if (!reason) { result.textContent = "Say what was done first."; return; }
    var door = button.getAttribute("data-door");
    button.disabled = true;
    fetch("/v1/devices/" + encodeURIComponent(id) + "/doors/" + door + "/service", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify({ reason: reason })
    }).then(function (response) {
      if (response.ok) {
        result.textContent = "Door " + door + " is back in service.";
        return;
      }
      return response.json().then(function (body) {
        result.textContent = (body.title || "Refused") + (body.detail ? ": " + body.detail : "");
      });
    }).catch(function () {
      result.textContent = "The gateway did not answer.";
    }).then(function () { button.disabled = false; });
  }
})();
