// The console's own script: event streams that resume where they left off, and a feed
// that keeps its newest rows.
(function () {
  "use strict";
  var lastSeen = {};
  var named = ["job", "task", "position"];

  // htmx's SSE extension (loaded after this script) asks for its EventSource here. The browser resumes a dropped
  // stream by itself (Last-Event-ID); when it gives up and htmx opens a new one, that
  // one starts after the last sequence seen, so nothing is lost or shown twice.
  htmx.createEventSource = function (url) {
    var after = lastSeen[url];
    var target = after ? url + (url.indexOf("?") < 0 ? "?" : "&") + "after=" + encodeURIComponent(after) : url;
    var source = new EventSource(target);
    named.forEach(function (name) {
      source.addEventListener(name, function (event) {
        if (event.lastEventId) { lastSeen[url] = event.lastEventId; }
      });
    });
    return source;
  };

  var KEEP = 1000;
  document.addEventListener("htmx:sseMessage", function (event) {
    var feed = document.getElementById("feed");
    if (!feed) { return; }
    while (feed.rows.length > KEEP) { feed.deleteRow(feed.rows.length - 1); }
  });
})();
