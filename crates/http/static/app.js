// GenAI Resources: small enhancements on top of server-rendered pages. Everything works without
// this file; with it, dialogs open in place as real modal dialogs, and row menus float next to
// their ⋯ button (instead of opening in the row) and close sensibly.
(function () {
  "use strict";

  // The stylesheet floats row menus only when this script is there to place them.
  document.documentElement.classList.add("js");

  // A row menu is drawn with position: fixed, against the window, so that the table's scroll
  // box cannot clip it: below its ⋯, right-aligned with it, or above it when there is more room
  // there (the last rows near the bottom of the window), and never past the window's edges.
  // Until it is placed it stays invisible, so it never flashes where it does not belong.
  var GAP = 4, MARGIN = 8;
  function place(d) {
    var menu = d.querySelector(".menu"), summary = d.querySelector("summary");
    if (!menu || !summary) return;
    var r = summary.getBoundingClientRect();
    var vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
    if (r.bottom < 0 || r.top > vh) {
      // Its ⋯ has been scrolled out of sight: a menu floating on its own would only confuse.
      d.removeAttribute("open");
      return;
    }
    menu.style.maxHeight = "";
    var w = menu.offsetWidth, h = menu.offsetHeight;
    var below = vh - r.bottom - GAP - MARGIN, above = r.top - GAP - MARGIN;
    var up = h > below && above > below;
    var room = up ? above : below;
    if (h > room) {
      menu.style.maxHeight = Math.max(room, 0) + "px";
      h = room;
    }
    var left = Math.max(MARGIN, Math.min(r.right - w, vw - MARGIN - w));
    menu.style.left = left + "px";
    menu.style.top = (up ? r.top - GAP - h : r.bottom + GAP) + "px";
    d.classList.toggle("opens-up", up);
    menu.setAttribute("data-placed", "");
  }
  function placeOpenMenus() {
    document.querySelectorAll("details.row-menu[open]").forEach(place);
  }
  // Scrolling the page or the table, or resizing the window, moves the ⋯: the menu follows.
  document.addEventListener("scroll", placeOpenMenus, true);
  window.addEventListener("resize", placeOpenMenus);

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
      // A dialog replaced by the next one (Create Key's form by the new key) is not the host's any more.
      if (dialog.parentElement === host) host.innerHTML = "";
      if (back && back.focus) back.focus();
    });
  });

  // A dialog the page itself was sent with open (the Portal's key dialogs without htmx) becomes
  // modal as well; closing it goes to where its Cancel/Done link points.
  document.querySelectorAll("main dialog[data-modal][open]").forEach(function (dialog) {
    dialog.removeAttribute("open");
    dialog.showModal();
    var first = dialog.querySelector("input:not([type=hidden]), button, a");
    if (first) first.focus();
    dialog.addEventListener("close", function () {
      var back = dialog.querySelector("[data-close-dialog]");
      if (back && back.href) window.location.assign(back.href);
    });
  });

  // Copy buttons: copy the named field's text, and say so on the button.
  document.addEventListener("click", function (e) {
    var button = e.target.closest("[data-copy]");
    if (!button) return;
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) return;
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    };
    var fallback = function () {
      field.focus();
      field.select();
      try { document.execCommand("copy"); } catch (err) { /* the text stays selected for Ctrl+C */ }
      done();
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, fallback);
    } else {
      fallback();
    }
  });

  // A select marked data-autosubmit (the Portal's period) submits its form when changed.
  document.addEventListener("change", function (e) {
    var select = e.target.closest("select[data-autosubmit]");
    if (select && select.form) select.form.submit();
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

  // Opening a row menu places it, then moves focus to its first item, so the keyboard can go on
  // from there. Closing it forgets the placement.
  document.addEventListener("toggle", function (e) {
    var d = e.target;
    if (!(d instanceof HTMLDetailsElement) || !d.classList.contains("row-menu")) return;
    var menu = d.querySelector(".menu");
    if (!d.open) {
      if (menu) menu.removeAttribute("data-placed");
      return;
    }
    place(d);
    var item = d.querySelector("[role=menuitem]");
    if (item && d.open) item.focus();
  }, true);
})();
