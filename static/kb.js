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

  // Copy, feedback and follow-ups appear once the answer is recorded (they need its id).
  function showAnswerTools(card, data) {
    const tools = card.querySelector(".answer-tools");
    if (!tools || !data.turn) return;
    const feedback = tools.querySelector("form[data-feedback]");
    feedback.action = feedback.dataset.urlTemplate.replace("/0/", `/${data.turn}/`);
    const box = tools.querySelector(".follow-ups");
    (data.follow_ups || []).forEach((text) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.dataset.followUp = "";
      button.textContent = text;
      box.append(button);
    });
    box.hidden = !(data.follow_ups || []).length;
    tools.hidden = false;
  }

  // A suggested follow-up is asked like a typed question, in the same conversation.
  answers.addEventListener("click", (event) => {
    const button = event.target.closest("[data-follow-up]");
    if (!button) return;
    question.value = button.textContent;
    form.requestSubmit();
  });

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
      showAnswerTools(card, data);
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


// Answer tools (ask page and conversation pages): copy an answer's text, and send feedback
// without leaving the page. Without JavaScript the feedback form posts normally.
(function () {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button || !navigator.clipboard) return;
    const text = button.closest(".answer").querySelector(".answer-text").innerText;
    await navigator.clipboard.writeText(text);
    const label = button.textContent;
    button.textContent = button.dataset.copied || "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("form[data-feedback]");
    if (!form || !window.fetch || !event.submitter || !form.action) return;
    event.preventDefault();
    const body = new FormData(form);
    body.set("rating", event.submitter.value);
    const response = await fetch(form.action, {
      method: "POST", body, credentials: "same-origin", headers: { Accept: "application/json" },
    });
    if (!response.ok) return;
    form.querySelectorAll('button[name="rating"]').forEach((b) => {
      b.setAttribute("aria-pressed", String(b === event.submitter));
    });
    form.querySelector(".feedback-status").textContent = form.dataset.thanks || "Thank you.";
  });
})();

// Collection page, curators: drop files (or a zip) anywhere on the upload area, or pick
// them; each file is sent on its own request with its own progress bar and outcome, then
// the page reloads to follow them to "indexed" (the status polling above).
(function () {
  const form = document.querySelector("form.upload[data-dropzone]");
  if (!form || !window.FormData || !window.XMLHttpRequest) return;
  const input = form.querySelector('input[type="file"]');
  const list = form.querySelector(".upload-list");
  const token = form.querySelector('input[name="csrfmiddlewaretoken"]').value;
  const say = (name, fallback) => form.dataset[name] || fallback;

  function send(file) {
    return new Promise((resolve) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = file.name;
      const bar = document.createElement("progress");
      bar.max = 100; bar.value = 0;
      const outcome = document.createElement("span");
      outcome.className = "upload-outcome";
      item.append(name, " ", bar, " ", outcome);
      list.append(item);
      const body = new FormData();
      body.append("file", file);
      const request = new XMLHttpRequest();
      request.open("POST", window.location.pathname);
      request.setRequestHeader("Accept", "application/json");
      request.setRequestHeader("X-CSRFToken", token);
      request.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
      });
      request.addEventListener("load", () => {
        let data = {};
        try { data = JSON.parse(request.responseText); } catch (e) { /* an error page */ }
        bar.value = 100;
        if (request.status < 300) {
          outcome.textContent = say("queued", "queued");
          item.className = "ok";
        } else {
          const refused = (data.refused || [])[0];
          outcome.textContent = refused ? refused.reason : `${say("failed", "failed")} (HTTP ${request.status})`;
          item.className = "error";
        }
        resolve(request.status < 300);
      });
      request.addEventListener("error", () => {
        outcome.textContent = say("failed", "failed");
        item.className = "error";
        resolve(false);
      });
      request.send(body);
    });
  }

  async function sendAll(files) {
    form.classList.add("busy");
    const results = [];
    for (const file of files) results.push(await send(file));
    form.classList.remove("busy");
    // Show the new rows (and follow them to indexed); keep the list if anything failed.
    if (results.every(Boolean)) window.location.reload();
  }

  form.addEventListener("submit", (event) => {
    if (!input.files.length) return;
    event.preventDefault();
    sendAll([...input.files]);
  });
  ["dragenter", "dragover"].forEach((type) => form.addEventListener(type, (event) => {
    event.preventDefault();
    form.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => form.addEventListener(type, () => form.classList.remove("dragging")));
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) sendAll([...event.dataTransfer.files]);
  });
})();
