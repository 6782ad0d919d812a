"use strict";
// mailbridge's review page. The server renders the list and the draft (GET /review/drafts,
// GET /review/drafts/{uid}, HTML fragments); this script fetches them with the tab's token and
// sends the reviewer's actions to the API itself (save, approve, reject), each with the
// draft's ETag in If-Match, so a page that is no longer current says so instead of
// overwriting what someone else saved.
(function () {
  var KEY = "mailbridge-token";
  var tokenForm = document.getElementById("token-form");
  var tokenInput = document.getElementById("token");
  var forget = document.getElementById("forget");
  var queue = document.getElementById("queue");
  var pane = document.getElementById("draft");
  var status = document.getElementById("status");
  var escaped = false;  // Esc pressed once over unsaved changes

  function token() { return sessionStorage.getItem(KEY) || ""; }

  function say(text, kind) {
    status.textContent = text;
    status.className = kind || "";
  }

  function call(method, path, options) {
    options = options || {};
    var headers = { "Authorization": "Bearer " + token() };
    if (options.etag) { headers["If-Match"] = options.etag; }
    if (options.accept) { headers["Accept"] = options.accept; }
    if (options.body !== undefined) { headers["Content-Type"] = "application/json"; }
    return fetch(path, {
      method: method, headers: headers, cache: "no-store", credentials: "omit",
      body: options.body === undefined ? undefined : JSON.stringify(options.body)
    });
  }

  function problem(response) {
    // the API's own message, from its error shape {"error": {"message"}}
    return response.text().then(function (text) {
      try { return JSON.parse(text).error.message; } catch (e) { return response.statusText; }
    });
  }

  function refused(response) {
    if (response.status === 401) {
      say("This token was not accepted. Enter a valid one.", "error");
      forget.hidden = true;
      tokenInput.focus();
      return Promise.resolve(true);
    }
    return Promise.resolve(false);
  }

  function selected() {
    var found = /(?:^#|&)draft=([0-9a-fA-F-]{36})/.exec(location.hash);
    return found ? found[1].toLowerCase() : null;
  }

  function loadList() {
    if (!token()) { return Promise.resolve(); }
    return call("GET", "review/drafts" + (selected() ? "?selected=" + selected() : ""))
      .then(function (response) {
        if (!response.ok) {
          return refused(response).then(function (done) {
            if (!done) { return problem(response).then(function (m) { say(m, "error"); }); }
          });
        }
        forget.hidden = false;
        return response.text().then(function (html) { queue.innerHTML = html; });
      });
  }

  function openDraft(uid, focus) {
    return call("GET", "review/drafts/" + uid).then(function (response) {
      if (!response.ok) {
        return refused(response).then(function (done) {
          if (done) { return; }
          return problem(response).then(function (m) {
            pane.innerHTML = "";
            say(response.status === 404 ? "This draft is no longer there (sent or deleted)."
                : m, "error");
          });
        });
      }
      return response.text().then(function (html) {
        pane.innerHTML = html;
        if (focus) { document.getElementById("draft-title").focus(); }
      });
    });
  }

  function showSelected(focus) {
    var uid = selected();
    if (!uid) { pane.innerHTML = ""; return Promise.resolve(); }
    return openDraft(uid, focus);
  }

  function closeDraft() {
    var uid = selected();
    history.pushState(null, "", location.pathname + location.search);
    pane.innerHTML = "";
    loadList().then(function () {
      var link = uid && queue.querySelector('a[data-draft="' + uid + '"]');
      if (link) { link.focus(); } else if (queue.querySelector("a")) { queue.querySelector("a").focus(); }
    });
  }

  // "Name <a@b>, c@d" -> ["Name <a@b>", "c@d"]: commas inside quotes or <...> are kept
  function addresses(text) {
    var out = [], current = "", quoted = false, angle = false;
    for (var i = 0; i < text.length; i++) {
      var c = text[i];
      if (c === "\\" && quoted && i + 1 < text.length) { current += c + text[++i]; continue; }
      if (c === '"') { quoted = !quoted; }
      else if (c === "<" && !quoted) { angle = true; }
      else if (c === ">" && !quoted) { angle = false; }
      if ((c === "," || c === ";" || c === "\n") && !quoted && !angle) {
        if (current.trim()) { out.push(current.trim()); }
        current = "";
      } else { current += c; }
    }
    if (current.trim()) { out.push(current.trim()); }
    return out;
  }

  function view() { return document.getElementById("draft-view"); }

  function stale(action) {
    var article = view();
    var note = document.createElement("div");
    note.className = "stale";
    note.setAttribute("role", "alert");
    note.innerHTML = "<p><strong>This draft changed since you opened it</strong> (someone " +
      "else saved it, or a mail client did). Nothing was " + action + ": your page is not " +
      "the current version. <button type=\"button\" data-reload>Show the current " +
      "version</button> (your unsaved changes here are then dropped).</p>";
    article.insertBefore(note, article.firstChild.nextSibling);
    say("Not " + action + ": the draft changed since you opened it.", "error");
    note.querySelector("button").focus();
  }

  function changes(form, article) {
    var body = {}, dirty = false;
    ["subject", "to", "cc", "bcc", "body_text"].forEach(function (name) {
      var field = form.elements[name];
      if (field.value === field.defaultValue) { return; }
      dirty = true;
      body[name] = name === "to" || name === "cc" || name === "bcc"
        ? addresses(field.value) : field.value;
    });
    if ("body_text" in body && article.dataset.hasHtml === "yes") { body.body_html = null; }
    return dirty ? body : null;
  }

  // Save the form's changes (if any); resolves to the draft's ETag afterwards, or null when
  // nothing may follow (stale, refused).
  function save(form, article) {
    var body = changes(form, article);
    if (body === null) { return Promise.resolve(article.dataset.etag); }
    body.uid = article.dataset.uid;
    return call("POST", "api/email/drafts", { body: body, etag: article.dataset.etag })
      .then(function (response) {
        if (response.ok) { return response.headers.get("ETag"); }
        if (response.status === 412) { stale("saved"); return null; }
        return refused(response).then(function (done) {
          if (done) { return null; }
          return problem(response).then(function (m) { say("Not saved: " + m, "error"); return null; });
        });
      });
  }

  function approve(uid, etag) {
    return call("POST", "api/email/drafts/" + uid + "/approve", { etag: etag })
      .then(function (response) {
        if (response.status === 412) { stale("approved"); return; }
        if (!response.ok) {
          return refused(response).then(function (done) {
            if (!done) { return problem(response).then(function (m) { say("Not approved: " + m, "error"); }); }
          });
        }
        return response.json().then(function (record) {
          var to = record.to.concat(record.cc, record.bcc).join(", ");
          closeDraft();
          say(record.status === "sent" ? "Approved and sent to " + to + "."
              : "Approved; it will be sent at " + record.planned_send_at + ".", "done");
        });
      });
  }

  function reject(uid, etag, reason) {
    return call("POST", "api/email/drafts/" + uid + "/reject", { body: { reason: reason }, etag: etag })
      .then(function (response) {
        if (response.status === 412) { stale("rejected"); return; }
        if (!response.ok) {
          return refused(response).then(function (done) {
            if (!done) { return problem(response).then(function (m) { say("Not rejected: " + m, "error"); }); }
          });
        }
        return Promise.all([loadList(), openDraft(uid, true)]).then(function () {
          say("Rejected. The draft stays, with your reason.", "done");
        });
      });
  }

  // An attachment, fetched with the token (a plain link could not carry it) and handed to the
  // browser as a download: from the draft's current message, by its place in the message.
  function download(button) {
    var article = view();
    var path = "api/v1/emails/" + article.dataset.imapUid + "/attachments/" +
      button.dataset.attachment + "?folder=Drafts&account=" + encodeURIComponent(article.dataset.account);
    return call("GET", path, { accept: "application/octet-stream" }).then(function (response) {
      if (!response.ok) {
        return refused(response).then(function (done) {
          if (done) { return; }
          if (response.status === 404) { stale("downloaded"); return; }
          return problem(response).then(function (m) { say("Not downloaded: " + m, "error"); });
        });
      }
      return response.blob().then(function (blob) {
        var url = URL.createObjectURL(blob);
        var link = document.createElement("a");
        link.href = url;
        link.download = button.dataset.filename;
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
        say("Downloaded " + button.dataset.filename + ".", "done");
      });
    });
  }

  pane.addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target, article = view();
    var uid = article.dataset.uid;
    if (form.id === "reject-form") {
      var reason = form.elements.reason.value.trim();
      if (!reason) { say("Say why it is rejected.", "error"); form.elements.reason.focus(); return; }
      say("Rejecting…");
      reject(uid, article.dataset.etag, reason);
      return;
    }
    var action = event.submitter ? event.submitter.value : "save";
    say(action === "approve" ? "Approving…" : "Saving…");
    save(form, article).then(function (etag) {
      if (etag === null) { return; }
      if (action === "approve") { return approve(uid, etag); }
      return Promise.all([loadList(), openDraft(uid, true)]).then(function () { say("Saved.", "done"); });
    });
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target.closest("[data-close]")) { event.preventDefault(); closeDraft(); }
    else if (target.closest("[data-attachment]")) { download(target.closest("[data-attachment]")); }
    else if (target.closest("[data-reload]")) {
      openDraft(view().dataset.uid, true).then(function () { say("This is the current version."); });
    }
  });

  document.addEventListener("keydown", function (event) {
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName);
    if (event.key === "Escape" && selected()) {
      event.preventDefault();
      var form = document.getElementById("edit-form");
      if (form && view() && changes(form, view()) !== null && !escaped) {
        escaped = true;
        say("You have unsaved changes: Save them, or press Esc again to drop them.", "error");
        return;
      }
      escaped = false;
      closeDraft();
    }
    else if (event.key === "r" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      loadList().then(function () { say("List reloaded."); });
    }
  });

  window.addEventListener("hashchange", function () { showSelected(true); });

  tokenForm.addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem(KEY, tokenInput.value.trim());
    tokenInput.value = "";
    say("");
    loadList().then(function () { return showSelected(false); }).then(function () {
      var first = queue.querySelector("a");
      if (first && !selected()) { first.focus(); }
    });
  });

  forget.addEventListener("click", function () {
    sessionStorage.removeItem(KEY);
    queue.innerHTML = "";
    pane.innerHTML = "";
    forget.hidden = true;
    say("The token is forgotten.");
    tokenInput.focus();
  });

  if (token()) {
    loadList().then(function () { return showSelected(false); });
  } else {
    tokenInput.focus();
  }
})();
