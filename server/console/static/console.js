// The console's own script: event streams that resume where they left off and stop when
// refused, live parts reloaded at most a few times a second, and forms that keep what is
// being typed.
(function () {
  "use strict";
  var lastSeen = {};
  var RELOAD_MS = 400;

  // A live part names the stream frames that reload it (data-live="job live"); it reloads
  // at once, then at most once per RELOAD_MS, and once more after a burst.
  function reload(elt) {
    if (elt._reloading) { elt._again = true; return; }
    htmx.trigger(elt, "refresh");
    elt._reloading = setTimeout(function () {
      elt._reloading = null;
      if (elt._again) { elt._again = false; reload(elt); }
    }, RELOAD_MS);
  }
  function reloadFor(name) {
    document.querySelectorAll("[data-live]").forEach(function (elt) {
      if (elt.dataset.live.split(" ").indexOf(name) >= 0) { reload(elt); }
    });
  }
  function say(text) {
    var status = document.getElementById("stream-status");
    if (status) { status.textContent = text; }
  }

  // htmx's SSE extension (loaded after this script) asks for its EventSource here. The
  // browser resumes a dropped stream by itself (Last-Event-ID); when htmx opens a new one
  // instead, it starts after the last sequence seen, so nothing is lost or shown twice.
  htmx.createEventSource = function (url) {
    var after = lastSeen[url];
    var target = after ? url + (url.indexOf("?") < 0 ? "?" : "&") + "after=" + encodeURIComponent(after) : url;
    var source = new EventSource(target);
    ["job", "task", "position"].forEach(function (name) {
      source.addEventListener(name, function (event) {
        if (event.lastEventId) { lastSeen[url] = event.lastEventId; }
        if (name !== "position") { reloadFor(name); }
      });
    });
    source.addEventListener("live", function () { reloadFor("live"); });
    // Refused: the stream would be refused again; the refusal is on the page.
    source.addEventListener("refusal", function () { source.close(); say("stopped"); });
    source.addEventListener("signin", function () { source.close(); window.location.assign("/signin"); });
    source.addEventListener("error", function () {
      say("reconnecting to the console…");
      fetch("/session", { credentials: "same-origin" }).then(function (answer) {
        if (answer.status === 401) { source.close(); window.location.assign("/signin"); }
      }, function () { /* the console is away: the browser keeps trying */ });
    });
    return source;
  };

  // A live part's reload is answered 204 (nothing to swap) when it would be the same as
  // what the page holds, so a form being filled in is not replaced under the user.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (event.detail.verb === "get" && elt.dataset && elt.dataset.digest) {
      event.detail.headers["x-seen-digest"] = elt.dataset.digest;
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt, xhr = event.detail.xhr;
    if (!elt.dataset || !("digest" in elt.dataset) || !xhr || xhr.status === 204) { return; }
    var digest = xhr.getResponseHeader("x-digest");
    elt.dataset.digest = digest || "";  // no digest: reload in full next time
  });
  // A form that created something starts empty again.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (form.matches && form.matches("form[data-reset-on-success]") && event.detail.successful
        && !document.querySelector("#outcome .refusal")) {
      form.reset();
    }
  });

  var KEEP = 1000;
  document.addEventListener("htmx:sseMessage", function () {
    var feed = document.getElementById("feed");
    if (!feed) { return; }
    while (feed.rows.length > KEEP) { feed.deleteRow(feed.rows.length - 1); }
  });
})();
