// warren UI: the little JavaScript it has. Every page works without it.
"use strict";

// Reload the content of pages that ask for it (data-refresh, in seconds),
// unless the tab is hidden or the user is in the middle of something.
(function () {
  const every = Number(document.body.dataset.refresh || 0);
  if (!every) return;
  const busy = () =>
    document.hidden ||
    document.querySelector("main details[open], main input:checked") ||
    (document.activeElement && document.activeElement.closest("main form"));
  setInterval(async () => {
    if (busy()) return;
    try {
      const res = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const fresh = doc.querySelector("main");
      if (fresh) document.querySelector("main").replaceChildren(...fresh.childNodes);
    } catch (e) {
      // The server is away for a moment: keep what is shown.
    }
  }, every * 1000);
})();

// "Select all" on the dead letters' table.
document.addEventListener("change", (ev) => {
  const all = ev.target.closest("input[data-select-all]");
  if (!all) return;
  for (const box of document.querySelectorAll('input[type=checkbox][name=id][form=bulk]')) {
    box.checked = all.checked;
  }
});
