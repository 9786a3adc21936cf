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
    if (/^localhost$|^127(\.\d+){3}$/.test(location.hostname) || navigator.webdriver) return;
    var body = { n: name, u: location.href, d: domain, r: document.referrer || null };
    if (props) body.p = props;
    fetch(endpoint, { method: "POST", headers: { "Content-Type": "text/plain" }, body: JSON.stringify(body), keepalive: true })
      .catch(function () {});
  }
  function pageview() {
    if (last === location.pathname + location.search) return;
    last = location.pathname + location.search;
    send("pageview");
  }
  var push = history.pushState;
  history.pushState = function () { push.apply(this, arguments); pageview(); };
  addEventListener("popstate", pageview);
  window.zenovay = function (name, options) { send(name, options && options.props); };
  pageview();
})();
