// Collection page: live per-document progress until nothing is queued or in progress, and a
// confirmation before destructive actions. No inline scripts (a strict CSP comes later).
(function () {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  const table = document.getElementById("documents");
  if (!table) return;
  const busy = new Set(["queued", "parsing", "embedding"]);
  const anyBusy = () => [...table.querySelectorAll(".status")].some((el) => busy.has(el.classList[1]));
  async function poll() {
    if (!anyBusy()) return;
    try {
      const response = await fetch(table.dataset.statusUrl, { credentials: "same-origin" });
      const data = await response.json();
      let finished = false;
      for (const d of data.documents) {
        const row = table.querySelector(`tr[data-document="${d.id}"]`);
        if (!row) { finished = true; continue; }  // a new document: reload to show it
        const status = row.querySelector(".status");
        const bar = row.querySelector("progress");
        if (bar) { bar.value = d.progress; bar.textContent = `${d.progress}%`; }
        if (status && !status.classList.contains(d.status)) {
          if (!busy.has(d.status)) finished = true;
          status.className = `status ${d.status}`;
          status.textContent = d.status_label;
        }
      }
      const counter = document.querySelector('#backlog [data-count="in_progress"]');
      if (counter) counter.textContent = `${data.backlog.in_progress} in progress`;
      if (finished) { window.location.reload(); return; }
    } catch (e) { /* transient; try again */ }
    setTimeout(poll, 1500);
  }
  setTimeout(poll, 1500);
})();
