// The live tail: each domain event as the gateway's stream sends it, newest at the top, at most
// 200 kept on the page.
(function () {
  "use strict";
  var main = document.querySelector("main[data-types]");
  var list = document.getElementById("tail");
  if (!main || !list) { return; }
  var state = document.getElementById("tail-state");
  var source = new EventSource("/console/events/live?types=" +
    encodeURIComponent(main.getAttribute("data-types")));
  source.onopen = function () { state.textContent = "Following."; main.setAttribute("data-live", "yes"); };
  source.onerror = function () { state.textContent = "Reconnecting…"; };
  source.addEventListener("event", function (message) {
    var event = JSON.parse(message.data);
    var item = document.createElement("li");
    item.setAttribute("data-type", event.type);
    var head = document.createElement("strong");
    head.textContent = event.type + " · " + event.aggregate_id;
    var at = document.createElement("span");
    at.textContent = " " + event.occurred_at.replace("T", " ").slice(0, 19) + " UTC ";
    var data = document.createElement("code");
    data.textContent = JSON.stringify(event.data);
    item.appendChild(head);
    item.appendChild(at);
    item.appendChild(data);
    list.insertBefore(item, list.firstChild);
    while (list.children.length > 200) { list.removeChild(list.lastChild); }
  });
})();
