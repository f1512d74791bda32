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
    document.getElementById("presence").textContent = state.online ? "online" : "offline";
    state.doors.forEach(function (door) {
      var cell = document.querySelector("li.door[data-door=\"" + door.door + "\"]");
      if (!cell) { return; }
      cell.className = "door " + door.sensor;
      cell.querySelector(".sensor").textContent = door.sensor;
      cell.querySelector(".lock").textContent =
        door.locked === true ? "locked" : door.locked === false ? "unlocked" : "";
      var marks = [];
      if (door.suspect) { marks.push("suspect"); }
      if (door.out_of_service) { marks.push("out of service"); }
      cell.querySelector(".marks").textContent = marks.join(", ");
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
