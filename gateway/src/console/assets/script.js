// Zenovay's tracker: sends a pageview to this gateway's /api/event in the abbreviated form
// Plausible's script uses, on load and on every in-page navigation. No cookies.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var domain = script.getAttribute("data-domain");
  var endpoint = script.getAttribute("data-api") || new URL("/api/event", script.src).href;
  var last = null;
  function send(name, props) {
    // As Plausible's script: nothing from a developer's own machine or a driven browser, and it
    // says so on the console.
    var ignored = /^localhost$|^127(\.\d+){3}$/.test(location.hostname) ? "localhost" : navigator.webdriver ? "automation" : "";
    if (ignored) return console.warn("Ignoring Event: " + ignored);
    var body = { n: name, u: location.href, d: domain, r: document.referrer || null };
    if (props) body.p = props;
    fetch(endpoint, { method: "POST", headers: { "Content-Type": "text/plain" }, body: JSON.stringify(body), keepalive: true })
      .catch(function () {});
  }
  // A new page is a new path, as Plausible's script counts it: a changed query string is not.
  function pageview() {
    if (last === location.pathname) return;
    last = location.pathname;
    send("pageview");
  }
  var push = history.pushState;
  history.pushState = function () { push.apply(this, arguments); pageview(); };
  addEventListener("popstate", pageview);
  window.zenovay = function (name, options) { send(name, options && options.props); };
  pageview();
})();
