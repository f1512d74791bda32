// Forms that call the API: <form class="act" data-api="/v1/…" data-method="POST"
// [data-confirm="…"] [data-reload] [data-stock]>. Named fields become the JSON body (a number field a number,
// a checkbox true or false, an empty field left out); the session's CSRF token goes along. The
// answer (a problem's title and fields, or "Done"; a secret shown whole, once) is written in the
// form's [data-result]; with data-reload the page shows the change by loading again.
(function () {
  "use strict";
  var main = document.querySelector("main[data-csrf]");
  if (!main) { return; }
  var csrf = main.getAttribute("data-csrf");
  function say(form, text) {
    var out = form.querySelector("[data-result]") || document.getElementById("result");
    if (out) { out.textContent = text; }
  }
  function bodyOf(form) {
    var body = {};
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name || field.type === "submit") { return; }
      if (field.type === "checkbox") { body[field.name] = field.checked; return; }
      if (field.hasAttribute("data-bool")) { body[field.name] = field.value === "true"; return; }
      var value = field.value.trim();
      if (value === "") { return; }
      if (field.getAttribute("data-list") !== null) {
        body[field.name] = value.split(/[\s,]+/).filter(function (v) { return v; });
      } else {
        body[field.name] = field.type === "number" ? Number(value) : value;
      }
    });
    return body;
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form.act")) { return; }
    event.preventDefault();
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { return; }
    var method = form.getAttribute("data-method") || "POST";
    var button = form.querySelector("button");
    if (button) { button.disabled = true; }
    say(form, "Sending…");
    var api = form.getAttribute("data-api");
    var body = bodyOf(form);
    if (form.hasAttribute("data-campaign")) {
      // A campaign: waves as counts ("10") and shares ("25%"), the target's filters together.
      body.waves = String(body.waves || "").split(",").map(function (w) {
        w = w.trim();
        return /%$/.test(w) ? { percent: Number(w.slice(0, -1)) } : { count: Number(w) };
      });
      body.target = {};
      ["model", "from_version", "id_prefix"].forEach(function (k) {
        if (body[k] !== undefined) { body.target[k] = body[k]; delete body[k]; }
      });
    }
    if (form.hasAttribute("data-stock")) {
      // One door's stock: the door goes in the path, one product line in the body.
      api = api.replace("{door}", encodeURIComponent(body.door));
      body = { items: body.qty > 0 ? [{ product_id: body.product_id, qty: body.qty }] : [] };
    }
    var init = { method: method, headers: { "x-csrf-token": csrf } };
    if (method !== "DELETE") {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    fetch(api, init).then(function (response) {
      return response.text().then(function (text) {
        var answer = text ? JSON.parse(text) : {};
        if (!response.ok) {
          var fields = (answer.errors || []).map(function (e) { return e.field + ": " + e.message; });
          say(form, (answer.title || "Refused") + ": " + (fields.join("; ") || answer.detail || answer.code || ""));
          return;
        }
        if (answer.secret) {
          say(form, "Done. The secret, shown once: " + answer.secret);
          return;
        }
        if (form.hasAttribute("data-reload")) { window.location.reload(); return; }
        say(form, "Done.");
      });
    }).catch(function () {
      say(form, "The gateway did not answer.");
    }).then(function () { if (button) { button.disabled = false; } });
  });
})();
