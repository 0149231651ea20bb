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

  // A live part of a page reloads on its events; the server answers 204 (nothing to swap)
  // when it would be the same as what the page holds, so a form being filled in or a
  // button being pressed is not replaced under the user.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (event.detail.verb === "get" && elt.dataset && elt.dataset.digest) {
      event.detail.headers["x-seen-digest"] = elt.dataset.digest;
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail.xhr;
    var digest = xhr && xhr.getResponseHeader("x-digest");
    if (digest && event.detail.elt.dataset) { event.detail.elt.dataset.digest = digest; }
  });

  var KEEP = 1000;
  document.addEventListener("htmx:sseMessage", function (event) {
    var feed = document.getElementById("feed");
    if (!feed) { return; }
    while (feed.rows.length > KEEP) { feed.deleteRow(feed.rows.length - 1); }
  });
})();
