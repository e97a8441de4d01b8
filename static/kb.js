// Refresh document statuses on a collection page until nothing is queued or in progress.
(function () {
  const table = document.getElementById("documents");
  if (!table) return;
  const busy = new Set(["queued", "parsing", "embedding"]);
  const anyBusy = () => [...table.querySelectorAll(".status")].some((el) => busy.has(el.classList[1]));
  async function poll() {
    if (!anyBusy()) return;
    try {
      const response = await fetch(table.dataset.statusUrl, { credentials: "same-origin" });
      const data = await response.json();
      const changed = data.documents.some((d) => {
        const row = table.querySelector(`tr[data-document="${d.id}"] .status`);
        return row && !row.classList.contains(d.status);
      });
      if (changed) { window.location.reload(); return; }
    } catch (e) { /* transient; try again */ }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
})();
