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
      // The sentence comes translated from the page (data-template, with {n}).
      if (counter) counter.textContent = (counter.dataset.template || "{n} in progress").replace("{n}", () => data.backlog.in_progress);
      if (finished) { window.location.reload(); return; }
    } catch (e) { /* transient; try again */ }
    setTimeout(poll, 1500);
  }
  setTimeout(poll, 1500);
})();

// Ask page: stream the answer over server-sent events (a POST, so fetch reads the stream).
// Everything the model writes is inserted as text; only the finished answer, which the
// server escaped and whose citations it verified, is inserted as HTML.
(function () {
  const form = document.getElementById("ask-form");
  if (!form || !window.fetch || !window.TextDecoder) return;
  const answers = document.getElementById("answers");
  const template = document.getElementById("answer-template");
  const conversation = form.querySelector('input[name="conversation"]');
  const newConversation = document.getElementById("new-conversation");
  const question = form.querySelector("textarea");
  const submit = form.querySelector('button[type="submit"]');
  // The texts this script writes come translated from the page (data-* on the form).
  const phrase = (name, fallback) => form.dataset[name] || fallback;

  newConversation.addEventListener("click", () => {
    conversation.value = "";
    answers.replaceChildren();
    newConversation.hidden = true;
    question.focus();
  });

  function sourceItem(s) {
    const li = document.createElement("li");
    li.id = `source-${s.number}`;
    const link = document.createElement("a");
    link.href = s.url;
    const title = document.createElement("strong");
    title.textContent = `[${s.number}] ${s.title}`;
    link.append(title, s.page ? phrase("page", ", page {page}").replace("{page}", () => s.page) : "");
    li.append(link);
    if (s.section) {
      const section = document.createElement("span");
      section.className = "section";
      section.textContent = s.section;
      li.append(section);
    }
    const snippet = document.createElement("p");
    snippet.className = "snippet";
    snippet.textContent = s.snippet;
    li.append(snippet);
    return li;
  }

  function handle(card, event, data) {
    const text = card.querySelector(".answer-text");
    const working = card.querySelector(".working");
    if (event === "sources") {
      const list = card.querySelector(".sources");
      data.forEach((s) => list.append(sourceItem(s)));
      card.querySelector(".sources-heading").hidden = data.length === 0;
      working.textContent = data.length ? phrase("writing", "Writing the answer…") : "";
    } else if (event === "answer") {
      working.hidden = true;
      text.append(document.createTextNode(data.text));
    } else if (event === "reasoning") {
      const box = card.querySelector(".reasoning");
      box.hidden = false;
      box.querySelector("pre").append(document.createTextNode(data.text));
    } else if (event === "done") {
      working.hidden = true;
      text.className = `answer-text ${data.mode}`;
      text.innerHTML = data.html;
      card.classList.remove("streaming");
      card.querySelectorAll(".sources li").forEach((li) => {
        li.classList.toggle("cited", data.cited.includes(Number(li.id.split("-")[1])));
      });
      if (data.notice) {
        const notice = card.querySelector(".notice");
        notice.textContent = data.notice;
        notice.hidden = false;
      }
      const model = data.model ? `${phrase("model", "Model {model}").replace("{model}", () => data.model)}${data.model_version ? ` (${data.model_version})` : ""} · ` : "";
      card.querySelector(".meta").textContent = `${model}${phrase("seconds", "{seconds} s").replace("{seconds}", () => data.seconds.toFixed(1))}`;
      conversation.value = data.conversation;
      newConversation.hidden = false;
    } else if (event === "error") {
      working.hidden = true;
      const notice = card.querySelector(".notice");
      notice.textContent = data.message;
      notice.hidden = false;
    }
  }

  form.addEventListener("submit", async (submitEvent) => {
    submitEvent.preventDefault();
    if (!question.value.trim()) return;
    const card = template.content.firstElementChild.cloneNode(true);
    card.querySelector(".question").textContent = question.value.trim();
    answers.append(card);
    const body = new FormData(form);
    question.value = "";
    submit.disabled = true;
    try {
      const response = await fetch(form.dataset.streamUrl, {
        method: "POST", body, credentials: "same-origin", headers: { Accept: "text/event-stream" },
      });
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = (block.match(/^event: (.*)$/m) || [])[1];
          const data = (block.match(/^data: (.*)$/m) || [])[1];
          if (event && data) handle(card, event, JSON.parse(data));
        }
      }
    } catch (error) {
      handle(card, "error", { message: phrase("loadError", "The answer could not be loaded. Check your connection and try again.") });
    } finally {
      submit.disabled = false;
      card.scrollIntoView({ block: "nearest" });
    }
  });
})();
