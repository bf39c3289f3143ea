// FaceLens console: progressive enhancement only (every page works without it). No data leaves the page
// except by its forms; nothing is stored in the browser.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-drop]")) {
    const input = form.querySelector("input[type=file]");
    const progress = form.querySelector("[data-progress]");
    const say = (text) => { if (progress) progress.textContent = text; };
    const names = () => Array.from(input.files).map((f) => f.name).join(", ");
    input.addEventListener("change", () => say(input.files.length ? `Chosen: ${names()}` : ""));
    form.addEventListener("dragover", (event) => { event.preventDefault(); form.classList.add("over"); });
    form.addEventListener("dragleave", () => form.classList.remove("over"));
    form.addEventListener("drop", (event) => {
      event.preventDefault();
      form.classList.remove("over");
      const dropped = new DataTransfer();
      for (const file of event.dataTransfer.files) {
        dropped.items.add(file);
        if (!input.multiple) break;
      }
      input.files = dropped.files;
      say(`Chosen: ${names()}`);
    });
    form.addEventListener("submit", () => {
      const count = input.files.length;
      say(count ? `Sending ${count} file(s); faces are found and embedded on the server, one image after another…`
                : "Working…");
      for (const button of form.querySelectorAll("button")) button.disabled = true;
    });
  }
  for (const select of document.querySelectorAll("select[data-reload]")) {
    select.addEventListener("change", () => {
      window.location.search = "?collection=" + encodeURIComponent(select.value);
    });
  }
});
