// The run page follows its run through the API's event stream (/api/v1/runs/ID/stream,
// behind the same cookie): each change has htmx fetch the steps again, and the run's end
// reloads the page once, graph and status included. The page's slow poll stays as a
// safety net for a stream a proxy cut.
(function () {
  var card = document.querySelector("[data-stream]");
  if (!card || !window.EventSource) return;
  var source = new EventSource(card.getAttribute("data-stream"));
  source.addEventListener("run", function () { htmx.trigger("#steps-card", "changed"); });
  source.addEventListener("end", function () { source.close(); window.location.reload(); });
})();
