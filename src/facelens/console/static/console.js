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
    form.addEventListener("submit", (event) => {
      if (form.hasAttribute("data-one-by-one") && input.files.length > 1) {
        event.preventDefault();
        oneByOne(form, input, say);
        return;
      }
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

// Index a drop of images one request per file, so the page can say how far it got; each file's row is the
// server's own (the same page a form without JavaScript gets), errors included.
async function oneByOne(form, input, say) {
  const files = Array.from(input.files);
  const csrf = form.querySelector("input[name=csrf]").value;
  const buttons = form.querySelectorAll("button");
  for (const button of buttons) button.disabled = true;
  document.getElementById("index-results")?.remove();
  const table = document.createElement("table");
  table.id = "index-results";
  table.innerHTML = "<caption>Result per file</caption><thead><tr><th scope=col>File</th>" +
    "<th scope=col>Result</th><th scope=col>Detail</th></tr></thead><tbody></tbody>";
  form.after(table);
  const body = table.querySelector("tbody");
  for (const [index, file] of files.entries()) {
    say(`Indexing ${index + 1} of ${files.length}: ${file.name}…`);
    const data = new FormData();
    data.append("csrf", csrf);
    data.append("images", file, file.name);
    let rows = [];
    try {
      const response = await fetch(form.action, { method: "POST", body: data, credentials: "same-origin" });
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      if (new URL(response.url).pathname === "/console/signin") {
        rows = [row(file.name, "not indexed", "The session expired: sign in again.")];
      } else {
        rows = Array.from(page.querySelectorAll("#index-results tbody tr"));
        if (!rows.length) rows = [row(file.name, "not indexed", page.querySelector("main .notice")?.textContent || `HTTP ${response.status}`)];
      }
    } catch (error) {
      rows = [row(file.name, "not indexed", String(error))];
    }
    for (const found of rows) body.append(document.importNode(found, true));
  }
  say(`Done: ${files.length} file(s) sent. Reload the page to see the collection's faces.`);
  table.scrollIntoView({ block: "end" });
  for (const button of buttons) button.disabled = false;
}

function row(name, result, detail) {
  const tr = document.createElement("tr");
  for (const text of [name, result, detail]) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  tr.cells[1].className = "bad";
  return tr;
}

