// Progressive enhancement for Switchboard's pages. Every form works without this script;
// with it, a few answer in place instead of loading a new page.
//
//   form[data-inline="ID"]   posts in the background and puts the answer (an HTML fragment
//                            from the server) into the element with that id, which is a
//                            live region, so screen readers announce it.
//   [data-confirm="TEXT"]    on a submit button or form: asks before posting.
//   select[data-autosubmit]  submits its form when the choice changes (the preset chooser).
//   button[data-copy="TEXT"] copies TEXT to the clipboard (a DNS record's value); hidden
//                            without this script, where the value is selected by hand.
"use strict";

(function () {
  const FRAGMENT_HEADER = "X-Switchboard-Fragment";

  function confirmed(form, submitter) {
    const text = (submitter && submitter.dataset.confirm) || form.dataset.confirm;
    return !text || window.confirm(text);
  }

  async function postInPlace(form, submitter) {
    const target = document.getElementById(form.dataset.inline);
    if (!target) return false;
    const body = new URLSearchParams(new FormData(form, submitter || undefined));
    const buttons = form.querySelectorAll("button");
    const busyText = submitter && submitter.dataset.busy;
    const label = submitter ? submitter.textContent : "";
    buttons.forEach((b) => (b.disabled = true));
    if (submitter && busyText) submitter.textContent = busyText;
    target.setAttribute("aria-busy", "true");
    try {
      // Not form.action: a control named "action" (the test buttons) shadows that property.
      const response = await fetch(form.getAttribute("action") || window.location.href, {
        method: "POST",
        body,
        headers: { [FRAGMENT_HEADER]: "1" },
        credentials: "same-origin",
      });
      if (response.redirected || response.status === 401) {
        // The session ended: let the browser follow to the sign-in page.
        window.location.assign(response.url);
        return true;
      }
      target.innerHTML = await response.text();
      target.dataset.status = String(response.status);
    } catch (error) {
      target.textContent =
        "Switchboard could not be reached (" + error.message + "). Check your connection and try again.";
    } finally {
      target.removeAttribute("aria-busy");
      buttons.forEach((b) => (b.disabled = false));
      if (submitter && busyText) submitter.textContent = label;
    }
    return true;
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    const submitter = event.submitter;
    if (!confirmed(form, submitter)) {
      event.preventDefault();
      return;
    }
    if (form.dataset.inline) {
      event.preventDefault();
      postInPlace(form, submitter);
    }
  });

  document.addEventListener("change", (event) => {
    const select = event.target;
    if (select.matches("select[data-autosubmit]") && select.form) {
      select.form.requestSubmit();
    }
  });

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    try {
      await navigator.clipboard.writeText(button.dataset.copy);
      button.textContent = "Copied";
    } catch (error) {
      button.textContent = "Copy failed: select the value";
    }
  });

  // Show the error summary to keyboard and screen-reader users first.
  document.addEventListener("DOMContentLoaded", () => {
    const summary = document.querySelector(".error-summary");
    if (summary) summary.focus();
    document.querySelectorAll("button[data-copy]").forEach((b) => (b.hidden = false));
  });
})();
