// The firmware page: the chosen file is sent as the body of POST /v1/firmware, its version,
// models and signature in the query, with the session's CSRF token.
(function () {
  "use strict";
  var main = document.querySelector("main[data-csrf]");
  var form = document.getElementById("upload");
  if (!main || !form) { return; }
  var result = document.getElementById("result");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var file = form.elements.file.files[0];
    if (!file) { result.textContent = "Choose the image file."; return; }
    var query = ["version", "models", "signature"].map(function (name) {
      return name + "=" + encodeURIComponent(form.elements[name].value.trim());
    }).join("&");
    result.textContent = "Uploading…";
    fetch("/v1/firmware?" + query, {
      method: "POST",
      headers: { "content-type": "application/octet-stream", "x-csrf-token": main.getAttribute("data-csrf") },
      body: file
    }).then(function (response) {
      return response.json().then(function (answer) {
        if (response.ok) { window.location.reload(); return; }
        var fields = (answer.errors || []).map(function (e) { return e.field + ": " + e.message; });
        result.textContent = (answer.title || "Refused") + ": " + (fields.join("; ") || answer.detail || "");
      });
    }).catch(function () { result.textContent = "The gateway did not answer."; });
  });
})();
