// whisperd status page: polls api/status and rebuilds the view. Every piece of data is
// inserted with textContent (never as HTML), so a file named <script> stays text.
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const EVERY_MS = Math.max(1, Number(params.get("refresh")) || 5) * 1000;
  let lastGood = null;
  let timer = null;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many);
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function about(seconds) {
    if (seconds < 60) return "less than a minute";
    if (seconds < 5400) return "about " + plural(Math.round(seconds / 60), "minute", "minutes");
    return "about " + (seconds / 3600).toFixed(1) + " hours";
  }

  function percent(p) {
    return Math.round(Math.max(0, Math.min(1, p || 0)) * 100) + "%";
  }

  function folderTitle(name) {
    return name === "" ? "Inbox (top level)" : name + "/";
  }

  function counts(f) {
    const list = el("ul", "counts");
    const items = [
      ["waiting", f.waiting], ["running", f.running],
      ["done today", f.done_today], ["failed", f.failed],
    ];
    for (const [label, n] of items) {
      const li = el("li", "count " + label.replace(" ", "-") + (n ? "" : " zero"));
      li.append(el("strong", null, n), el("span", null, " " + label));
      list.append(li);
    }
    return list;
  }

  function runningJob(job, fetchedAt) {
    const box = el("div", "job");
    box.append(el("div", "name", job.name));
    const bar = el("div", "bar");
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.setAttribute("aria-valuenow", String(Math.round((job.progress || 0) * 100)));
    const fill = el("div", "fill");
    fill.style.width = percent(job.progress);
    bar.append(fill);
    box.append(bar);
    let when = "estimating when it ends…";
    if (job.ends_in_seconds !== null && job.ends_in_seconds !== undefined) {
      const end = fetchedAt + job.ends_in_seconds * 1000;
      when = "ends around " + clock(end) + " (in " + about(job.ends_in_seconds) + ")";
    }
    box.append(el("div", "meta", percent(job.progress) + " done · " + when));
    return box;
  }

  function failedFile(file) {
    const li = el("li", "failed-file");
    li.append(el("div", "name", file.name));
    const tries = file.attempts ? " (after " + plural(file.attempts, "attempt", "attempts") + ")" : "";
    li.append(el("div", "reason", (file.error || "unknown error") + tries));
    const hint = el("div", "hint", "To try again, replace the file in the inbox, or ask the operator to run: ");
    hint.append(el("code", "cmd", file.retry_command));
    li.append(hint);
    return li;
  }

  function waitingFile(file) {
    const li = el("li", "waiting-file", file.name);
    if (file.state === "incomplete") {
      li.append(el("span", "retrying", " — waiting for the rest of the file: " + (file.error || "")));
    } else if (file.error) {
      li.append(el("span", "retrying", " — will retry after: " + file.error));
    }
    return li;
  }

  function doneFile(file) {
    const li = el("li", "done-file", file.name);
    const parts = [];
    if (file.finished_at) parts.push("at " + clock(Date.parse(file.finished_at)));
    if (file.outputs && file.outputs.length) {
      parts.push("→ " + file.outputs.map((o) => o.split("/").pop()).join(", "));  // same folder
    }
    if (parts.length) li.append(el("span", "meta", " " + parts.join(" ")));
    return li;
  }

  function block(title, listTag, items, render, more) {
    const wrap = el("div", "block");
    wrap.append(el("h3", null, title));
    const list = el(listTag, "files");
    for (const item of items) list.append(render(item));
    wrap.append(list);
    if (more > 0) wrap.append(el("p", "more", "and " + more + " more"));
    return wrap;
  }

  function folderCard(f, fetchedAt) {
    const card = el("section", "folder");
    card.dataset.folder = f.folder;
    card.append(el("h2", null, folderTitle(f.folder)), counts(f));
    if (f.running_jobs.length) {
      const wrap = el("div", "block");
      wrap.append(el("h3", null, "Running"));
      for (const job of f.running_jobs) wrap.append(runningJob(job, fetchedAt));
      card.append(wrap);
    }
    if (f.failed_files.length) {
      card.append(block("Failed", "ul", f.failed_files, failedFile, f.failed - f.failed_files.length));
    }
    if (f.waiting_files.length) {
      card.append(block("Waiting", "ol", f.waiting_files, waitingFile, f.waiting - f.waiting_files.length));
    }
    if (f.recent_done.length) {
      card.append(block("Done today", "ul", f.recent_done, doneFile, f.done_today - f.recent_done.length));
    }
    return card;
  }

  function isQuiet(f) {
    return !(f.waiting || f.running || f.failed || f.done_today);
  }

  function overview(data) {
    const box = document.getElementById("overview");
    const t = data.throughput_last_hour || {};
    const audio = t.audio_seconds || 0;
    const length = audio < 60 ? Math.round(audio) + " s" :
      audio < 3600 ? Math.round(audio / 60) + " min" : (audio / 3600).toFixed(1) + " h";
    let text = "Last hour: " + plural(t.files_done || 0, "file", "files") + " transcribed, " +
      length + " of audio";
    if (t.realtime_factor >= 1) text += ", " + t.realtime_factor + "× faster than real time";
    else if (t.realtime_factor) text += ", slower than real time (" + t.realtime_factor + "×)";
    box.replaceChildren(el("p", "throughput", text + "."));
  }

  function service(data) {
    const line = document.getElementById("service");
    const up = data.service && data.service.running;
    line.className = "service " + (up ? "up" : "down");
    line.textContent = up ? "whisperd is running." : "whisperd is not running: new files wait until it starts.";
  }

  function render(data, fetchedAt) {
    service(data);
    overview(data);
    const folders = data.folders || [];
    const cards = folders.filter((f) => !isQuiet(f)).map((f) => folderCard(f, fetchedAt));
    if (!cards.length) cards.push(el("p", "empty", "Nothing waiting, running or done today."));
    document.getElementById("folders").replaceChildren(...cards);
    const quiet = folders.filter(isQuiet).map((f) => folderTitle(f.folder));
    const quietLine = document.getElementById("quiet");
    quietLine.hidden = !quiet.length;
    quietLine.textContent = "No activity today in: " + quiet.join(", ");
  }

  function problem(message) {
    const box = document.getElementById("problem");
    box.hidden = !message;
    box.textContent = message || "";
  }

  function stamp() {
    const updated = document.getElementById("updated");
    updated.textContent = lastGood ? "Updated " + clock(lastGood) + "; refreshes every " +
      Math.round(EVERY_MS / 1000) + " s." : "";
  }

  async function refresh() {
    timer = null;
    if (document.hidden) return schedule();
    try {
      const response = await fetch("api/status", { cache: "no-store", credentials: "same-origin" });
      const data = await response.json();
      if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
      lastGood = Date.now();
      render(data, lastGood);
      problem(null);
    } catch (err) {
      const since = lastGood ? " Showing what was known at " + clock(lastGood) + "." : "";
      problem("Cannot get the status from whisperd (" + err.message + ")." + since + " Retrying…");
    }
    stamp();
    schedule();
  }

  function schedule() {
    if (timer === null) timer = window.setTimeout(refresh, EVERY_MS);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && timer !== null) {
      window.clearTimeout(timer);
      timer = null;
      refresh();
    }
  });
  refresh();
})();
