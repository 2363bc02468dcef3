// GenAI Resources: small enhancements on top of server-rendered pages. Everything works without
// this file; with it, dialogs open in place as real modal dialogs and menus close sensibly.
(function () {
  "use strict";

  // The row menu's button whose item was picked last: focus returns there when a dialog the
  // item opened closes (the item itself is hidden by then, its menu closed).
  var returnFocusTo = null;

  // A dialog fragment swapped in by htmx (the deprovision confirmation) becomes a modal dialog:
  // the browser then traps focus in it and closes it on Escape.
  document.addEventListener("htmx:afterSwap", function (e) {
    var host = document.getElementById("dialog-host");
    if (!host || e.detail.target !== host) return;
    var dialog = host.querySelector("dialog");
    if (!dialog) return;
    var back = returnFocusTo || document.activeElement;
    returnFocusTo = null;
    dialog.removeAttribute("open");
    dialog.showModal();
    var first = dialog.querySelector("button, a, input, select");
    if (first) first.focus();
    dialog.addEventListener("close", function () {
      host.innerHTML = "";
      if (back && back.focus) back.focus();
    });
  });

  document.addEventListener("click", function (e) {
    // "Cancel"/"Close" in an in-place dialog closes it instead of navigating.
    var close = e.target.closest("[data-close-dialog]");
    if (close) {
      var dialog = close.closest("dialog");
      if (dialog && dialog.open && dialog.parentElement && dialog.parentElement.id === "dialog-host") {
        e.preventDefault();
        dialog.close();
        return;
      }
    }
    // A row menu closes when one clicks elsewhere or picks an item.
    document.querySelectorAll("details.row-menu[open]").forEach(function (d) {
      if (d.contains(e.target) && e.target.closest("[role=menuitem]")) returnFocusTo = d.querySelector("summary");
      if (!d.contains(e.target) || e.target.closest("[role=menuitem]")) d.removeAttribute("open");
    });
  });

  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    document.querySelectorAll("details.row-menu[open]").forEach(function (d) {
      d.removeAttribute("open");
      var s = d.querySelector("summary");
      if (s) s.focus();
    });
  });

  // Opening a row menu moves focus to its first item, so the keyboard can go on from there.
  document.addEventListener("toggle", function (e) {
    var d = e.target;
    if (!(d instanceof HTMLDetailsElement) || !d.classList.contains("row-menu") || !d.open) return;
    var item = d.querySelector("[role=menuitem]");
    if (item) item.focus();
  }, true);
})();
