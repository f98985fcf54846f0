/* What the templates' forms do without inline handlers (the pages' Content-Security-Policy
 * runs no onclick= or onchange=: server/security_headers.py):
 *   form[data-confirm], button[data-confirm]  ask first; "Cancel" sends nothing
 *   [data-autosubmit]                         send the form as soon as it changes (a filter);
 *                                             data-autosubmit-clear="name" empties that field first
 *   input[data-select-all="selector"]         tick or untick every box the selector finds */
(function () {
  "use strict";
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.matches && form.matches("form[data-confirm]") && !window.confirm(form.dataset.confirm)) ev.preventDefault();
  });
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest && ev.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) ev.preventDefault();
  });
  document.addEventListener("change", function (ev) {
    var field = ev.target;
    if (!field.matches) return;
    if (field.matches("[data-autosubmit]") && field.form) {
      var clear = field.dataset.autosubmitClear;
      if (clear && field.form.elements[clear]) field.form.elements[clear].value = "";
      field.form.submit();
    } else if (field.matches("[data-select-all]")) {
      Array.prototype.forEach.call(document.querySelectorAll(field.dataset.selectAll), function (box) { box.checked = field.checked; });
    }
  });
})();
