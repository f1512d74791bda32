// The import page: a CSV file of lockers sent to the API (with the session's CSRF token); the
// new lockers' credentials shown once, and offered as a file to download.
(function () {
  "use strict";
  var main = document.querySelector("main[data-csrf]");
  var form = document.getElementById("import");
  if (!main || !form) { return; }
  var result = document.getElementById("result");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var file = document.getElementById("file").files[0];
    if (!file) { result.textContent = "Choose a CSV file first."; return; }
    file.text().then(function (text) {
      return fetch("/v1/devices/import", {
        method: "POST",
        headers: { "content-type": "text/csv", "x-csrf-token": main.getAttribute("data-csrf") },
        body: text
      });
    }).then(function (response) {
      return response.json().then(function (body) {
        var errors = document.getElementById("errors");
        errors.textContent = "";
        if (!response.ok) {
          result.textContent = (body.title || "Refused") + ": nothing was provisioned.";
          (body.errors || []).forEach(function (e) {
            var item = document.createElement("li");
            item.textContent = e.field + ": " + e.message;
            errors.appendChild(item);
          });
          return;
        }
        var lines = body.credentials.map(function (c) { return JSON.stringify(c); }).join("\n") + "\n";
        document.getElementById("credentials").value = lines;
        var link = document.getElementById("download");
        link.href = URL.createObjectURL(new Blob([lines], { type: "application/x-ndjson" }));
        link.hidden = false;
        result.textContent = body.count + " lockers provisioned. Their credentials are shown once: download them now.";
      });
    }).catch(function () { result.textContent = "The gateway did not answer."; });
  });
})();
