// The alarms page: acknowledge or resolve an alarm through the API (with the session's CSRF
// token), then show the list again.
(function () {
  "use strict";
  var main = document.querySelector("main[data-csrf]");
  var table = document.getElementById("alarms");
  if (!main || !table) { return; }
  var result = document.getElementById("result");
  table.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-act]");
    if (!button) { return; }
    var act = button.getAttribute("data-act");
    var id = button.getAttribute("data-alarm");
    var body = {};
    if (act === "resolve") {
      var text = document.getElementById("resolution").value.trim();
      if (!text) { result.textContent = "Say what was done before resolving."; return; }
      body = { resolution: text };
    }
    button.disabled = true;
    fetch("/v1/alarms/" + id + "/" + act, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": main.getAttribute("data-csrf") },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (answer) {
        if (response.ok) {
          var row = table.querySelector("tr[data-alarm=\"" + id + "\"]");
          row.querySelector(".state").textContent = answer.state;
          result.textContent = "Alarm " + id + " " + answer.state + ".";
          if (answer.state === "resolved") {
            row.lastElementChild.textContent = answer.resolution || "";
          } else {
            button.remove();
          }
        } else {
          result.textContent = (answer.title || "Refused") + (answer.detail ? ": " + answer.detail : "");
          button.disabled = false;
        }
      });
    }).catch(function () {
      result.textContent = "The gateway did not answer.";
      button.disabled = false;
    });
  });
})();
