// cic console: refreshes the live part of a page (the element with data-live, every that
// many milliseconds) from the same URL, asking the server for that part only. Pages read
// the same without it. Nothing is replaced while the keyboard focus is inside the part.
(function () {
  "use strict";
  var live = document.querySelector("[data-live]");
  if (!live || !window.fetch) return;
  var every = parseInt(live.getAttribute("data-live"), 10) || 3000;
  var stamp = document.createElement("p");
  stamp.className = "live-stamp";
  live.parentNode.insertBefore(stamp, live.nextSibling);
  var last = live.innerHTML;
  function tick() {
    // Not while the page is hidden; not after a part that says it is final.
    if (document.hidden) { setTimeout(tick, every); return; }
    fetch(location.href, { headers: { "X-Console-Fragment": "1" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) { location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null || html === undefined) {
          stamp.textContent = "Not updated: the server refused (reload the page)";
        } else if (!live.contains(document.activeElement)) {
          if (html !== last) { live.innerHTML = html; last = html; }
          stamp.textContent = "Updated " + new Date().toLocaleTimeString();
          document.documentElement.setAttribute("data-refreshed", String(Date.now()));
          if (live.querySelector("[data-final]")) { return; }
        }
        setTimeout(tick, every);
      })
      .catch(function () {
        stamp.textContent = "Not updated: the server did not answer";
        setTimeout(tick, every);
      });
  }
  if (!live.querySelector("[data-final]")) { setTimeout(tick, every); }
})();
