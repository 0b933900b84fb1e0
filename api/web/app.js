/* Policy RAG web page: ask, read cited answers, open the source span, list documents, upload.
 *
 * Vanilla JS, no network access other than this service. All untrusted text (answers, documents,
 * server messages) goes into the page through text nodes (txt / el), never through innerHTML.
 */
(function () {
  "use strict";

  var API = {
    answer: "/v1/answer",
    conversations: "/v1/conversations",
    feedback: "/v1/feedback",
    documents: "/v1/documents",
    health: "/healthz",
    me: "/v1/me",
  };
  // The key lives in this tab's sessionStorage only (gone when the tab closes; never a cookie).
  var KEY_STORE = "rag.apiKey";

  var state = {
    lang: "simplified",
    docs: [],
    docCache: new Map(),
    resp: null,
    filter: "",
    collection: "",
    asked: null,        // {doc, collection} the shown answer was retrieved with
    llm: false,         // the server has an LLM configured (GET /healthz "llm")
    modeTouched: false, // the user picked an answer mode: keep it
    busy: false,
    panelTrigger: null,
    panelRequest: 0,
    conversationId: null, // the stored conversation the next question continues (null: a new one)
    question: "",         // the question of the answer shown in #answer
    history: [],          // earlier turns {question, resp}, oldest first (sent as history when nothing is stored)
  };
  var STORE_KEY = "policy-rag.conversation";

  function $(id) { return document.getElementById(id); }

  // ---------- display-only simplified/traditional conversion ----------

  var origText = new WeakMap();   // Text node -> original (simplified) string
  var origAttrs = new WeakMap();  // Element -> {attr: original string}
  var ATTRS = ["placeholder", "aria-label", "title"];

  function t(s) {
    s = s == null ? "" : String(s);
    return state.lang === "traditional" && window.zhconv ? window.zhconv.toTraditional(s) : s;
  }

  function txt(s) {
    s = s == null ? "" : String(s);
    var node = document.createTextNode(t(s));
    origText.set(node, s);
    return node;
  }

  function setAttr(node, name, value) {
    var o = origAttrs.get(node) || {};
    o[name] = String(value);
    origAttrs.set(node, o);
    node.setAttribute(name, t(value));
  }

  function setText(node, s) {
    node.replaceChildren(txt(s));
  }

  // Record the page's static text as the originals, once, before anything is converted.
  function registerStatic() {
    var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (var n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!origText.has(n)) origText.set(n, n.data);
    }
    document.querySelectorAll("[placeholder],[aria-label],[title]").forEach(function (e) {
      var o = origAttrs.get(e) || {};
      ATTRS.forEach(function (a) { if (e.hasAttribute(a) && !(a in o)) o[a] = e.getAttribute(a); });
      origAttrs.set(e, o);
    });
    origTitle = document.title;
  }
  var origTitle = "";

  function applyLanguage() {
    var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
      acceptNode: function (n) {
        var p = n.parentNode && n.parentNode.nodeName;
        return p === "SCRIPT" || p === "STYLE" || p === "TEXTAREA" ? NodeFilter.FILTER_REJECT
          : NodeFilter.FILTER_ACCEPT;
      },
    });
    for (var n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!origText.has(n)) origText.set(n, n.data);
      var s = t(origText.get(n));
      if (n.data !== s) n.data = s;
    }
    document.querySelectorAll("[placeholder],[aria-label],[title]").forEach(function (e) {
      var o = origAttrs.get(e);
      if (!o) return;
      Object.keys(o).forEach(function (a) { e.setAttribute(a, t(o[a])); });
    });
    document.title = t(origTitle);
    document.documentElement.lang = state.lang === "traditional" ? "zh-Hant" : "zh-CN";
  }

  // ---------- DOM helpers ----------

  // el("p", {class: "x", onclick: fn, "aria-label": "..."}, "text", childNode, ...)
  function el(tag, props) {
    var node = document.createElement(tag);
    props = props || {};
    Object.keys(props).forEach(function (k) {
      var v = props[k];
      if (v == null || v === false) return;
      if (k.slice(0, 2) === "on" && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k === "class") node.className = v;
      else if (ATTRS.indexOf(k) >= 0) setAttr(node, k, v);
      else if (k === "dataset") Object.keys(v).forEach(function (d) { node.dataset[d] = v[d]; });
      else node.setAttribute(k, v === true ? "" : String(v));
    });
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child == null || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.append(typeof child === "string" || typeof child === "number" ? txt(String(child)) : child);
  }

  function fmt(x, digits) {
    return typeof x === "number" && isFinite(x) ? x.toFixed(digits) : "–";
  }

  function collectionOf(docId) {
    for (var i = 0; i < state.docs.length; i++) {
      if (state.docs[i].doc_id === docId) return docCollection(state.docs[i]);
    }
    return "";
  }

  function docTitle(docId, fallback) {
    for (var i = 0; i < state.docs.length; i++) {
      if (state.docs[i].doc_id === docId) return state.docs[i].title || docId;
    }
    return fallback || docId;
  }

  // ---------- HTTP ----------

  function ApiError(message, status) {
    this.message = message;
    this.status = status;
  }

  function errorMessage(res, body, raw) {
    if (body && typeof body.message === "string" && body.message) return body.message;
    if (body && typeof body.detail === "string" && body.detail) return body.detail;
    if (body && Array.isArray(body.detail)) {
      return body.detail.map(function (d) { return d && d.msg ? d.msg : JSON.stringify(d); }).join("; ");
    }
    var s = res.statusText || "请求失败";
    if (raw && !body) s += "：" + raw.slice(0, 200);
    return s;
  }

  // The JSON body of a response; for a non-2xx status an ApiError with the server's message.
  function readJSON(res) {
    return res.text().then(function (raw) {
      var body = null;
      try { body = raw ? JSON.parse(raw) : null; } catch (e) { body = null; }
      if (!res.ok) throw new ApiError(errorMessage(res, body, raw), res.status);
      return body;
    });
  }

  function networkError(e) {
    throw new ApiError("无法连接服务器（" + (e && e.message ? e.message : e) + "）", 0);
  }

  function request(path, opts) {
    opts = opts || {};
    opts.headers = keyHeaders(opts.headers || {});
    return fetch(path, opts).then(readJSON, networkError);
  }

  function getJSON(path) { return request(path, { headers: { Accept: "application/json" } }); }

  function describeError(e, what) {
    if (e instanceof ApiError) {
      return e.status ? what + "（HTTP " + e.status + "）：" + e.message : what + "：" + e.message;
    }
    return what + "：" + (e && e.message ? e.message : String(e));
  }

  // ---------- health and documents ----------

  function loadHealth() {
    var node = $("health");
    return fetch(API.health, { headers: { Accept: "application/json" } })
      .then(function (res) { return res.json(); })
      .then(function (h) {
        setLlm(h.llm === true);
        if (h.ready) {
          setText(node, "索引就绪：" + h.index_documents + " 篇文档，" + h.index_chunks + " 个段落");
          node.className = "health ok";
        } else {
          setText(node, "服务未就绪" + (h.error ? "：" + h.error : ""));
          node.className = "health bad";
        }
      })
      .catch(function () {
        setText(node, "无法连接服务器");
        node.className = "health bad";
      });
  }

  // "大模型生成" is offered only when the server has an LLM; then it is the default unless the user chose.
  function setLlm(available) {
    state.llm = available;
    var sel = $("answer-mode"), opt = sel.querySelector('option[value="llm"]');
    opt.disabled = !available;
    setText(opt, available ? "大模型生成" : "大模型生成（服务器未配置）");
    if (!available && sel.value === "llm") sel.value = "extractive";
    else if (available && !state.modeTouched) sel.value = "llm";
  }

  function loadDocuments() {
    return getJSON(API.documents).then(
      function (body) {
        state.docs = (body && body.documents) || [];
        renderDocuments(body ? body.total : state.docs.length);
        renderFilterOptions();
        renderPassages();
      },
      function (e) {
        setText($("docs-note"), describeError(e, "文档列表加载失败"));
        $("docs-note").className = "error-text";
      }
    );
  }

  function renderDocuments(total) {
    var tbody = $("docs-body");
    tbody.replaceChildren();
    state.docs.forEach(function (d) {
      var open = el("button", {
        type: "button", class: "linkish", "aria-controls": "doc-panel",
        onclick: function (ev) { openDocument(d.doc_id, null, ev.currentTarget); },
      }, d.title || d.doc_id);
      tbody.append(el("tr", {},
        el("td", {}, open, statusBadge(d)),
        el("td", { class: "id" }, d.doc_id),
        el("td", { class: "num" }, String(d.chars)),
        el("td", { class: "num" }, String(d.chunks))));
    });
    $("docs-table").hidden = state.docs.length === 0;
    setText($("docs-note"), state.docs.length ? "共 " + total + " 篇文档。点击标题查看原文。"
      : "索引中还没有文档。");
    $("docs-note").className = "muted";
  }

  function docCollection(d) { return d.collection || "default"; }

  // Collection select: the collections present in the document list. Document select: the documents of
  // the chosen collection (all when none is chosen).
  function renderFilterOptions() {
    var csel = $("collection-filter");
    var names = [];
    state.docs.forEach(function (d) {
      if (names.indexOf(docCollection(d)) < 0) names.push(docCollection(d));
    });
    names.sort();
    csel.replaceChildren(el("option", { value: "" }, "全部类别"));
    names.forEach(function (c) { csel.append(el("option", { value: c }, c)); });
    csel.value = names.indexOf(state.collection) >= 0 ? state.collection : "";
    state.collection = csel.value;

    var sel = $("doc-filter");
    var keep = state.filter;
    var docs = state.docs.filter(function (d) { return !state.collection || docCollection(d) === state.collection; });
    sel.replaceChildren(el("option", { value: "" }, "全部文档"));
    docs.forEach(function (d) {
      sel.append(el("option", { value: d.doc_id }, d.title || d.doc_id));
    });
    sel.value = docs.some(function (d) { return d.doc_id === keep; }) ? keep : "";
    state.filter = sel.value;

    var isel = $("issuer-filter"), had = isel.value, issuers = [];
    state.docs.forEach(function (d) {
      var i = (d.meta || {}).issuer;
      if (i && issuers.indexOf(i) < 0) issuers.push(i);
    });
    issuers.sort();
    isel.replaceChildren(el("option", { value: "" }, "全部机关"));
    issuers.forEach(function (i) { isel.append(el("option", { value: i }, i)); });
    isel.value = issuers.indexOf(had) >= 0 ? had : "";
  }

  // A document not in force today: a badge beside its title, naming what replaced it.
  var STATUS_LABEL = { superseded: "已废止", expired: "已失效", not_yet_effective: "未生效" };
  function statusBadge(d) {
    var label = STATUS_LABEL[d.status];
    if (!label) return null;
    var by = d.superseded_by;
    var note = by ? "被《" + (by.title || by.doc_id) + "》" + (by.how || "废止") + (by.date ? "（" + by.date + "）" : "")
      : d.status === "expired" ? "有效期至 " + ((d.meta || {}).date_expires || "") : "";
    return el("span", { class: "badge status-" + d.status, title: note }, label);
  }

  // ---------- asking ----------

  // The answer area is written through this sink so a streaming (SSE) path can reuse it:
  // begin() once, append(token) per token as tokens arrive, end(response) with the final JSON
  // (which re-renders the text with clickable [n] markers).
  var answerSink = {
    live: null,
    begin: function () {
      var box = $("answer");
      box.setAttribute("aria-busy", "true");
      this.live = el("p", { class: "answer-text streaming" });
      box.replaceChildren(this.live);
    },
    append: function (token) {
      if (this.live) this.live.append(txt(token));
    },
    end: function (resp) {
      this.live = null;
      $("answer").removeAttribute("aria-busy");
      state.resp = resp;
      renderAnswer();
      renderPassages();
    },
    fail: function () {
      this.live = null;
      var box = $("answer");
      box.removeAttribute("aria-busy");
      box.replaceChildren(el("p", { class: "muted" }, "没有得到回答。"));
    },
  };

  function askBody(query, topK) {
    var body = { query: query, top_k: topK, mode: $("answer-mode").value === "llm" ? "llm" : "extractive",
                 stream: true };
    // a follow-up is resolved on the server: from the stored conversation, else from the turns shown here
    if (state.conversationId) body.conversation_id = state.conversationId;
    else if (state.history.length) {
      body.history = state.history.slice(-10).map(function (h) {
        var r = h.resp || {};
        return { question: h.question, answer: (r.answer || r.message || "").slice(0, 2000),
                 query: r.query_used || "", short_answer: r.short_answer || "",
                 doc_ids: (r.citations || []).map(function (c) { return c.doc_id; }).slice(0, 20) };
      });
    }
    if (state.filter) body.doc_ids = [state.filter];
    if (state.collection) body.collection = state.collection;
    // validity and issuer (issue 17): documents in force on the day chosen (today by default)
    if ($("issuer-filter").value) body.issuer = $("issuer-filter").value;
    if ($("as-of").value) body.as_of = $("as-of").value;
    if ($("include-superseded").checked) body.include_superseded = true;
    return body;
  }

  // One server-sent event ("event: x" / "data: ..." lines) -> {event, data}; data lines join with "\n".
  function parseEvent(block) {
    var ev = { event: "message", data: [] };
    block.split("\n").forEach(function (line) {
      var i = line.indexOf(":");
      if (i === 0) return;  // comment
      var field = i < 0 ? line : line.slice(0, i), value = i < 0 ? "" : line.slice(i + 1);
      if (value.charAt(0) === " ") value = value.slice(1);
      if (field === "event") ev.event = value;
      else if (field === "data") ev.data.push(value);
    });
    ev.data = ev.data.join("\n");
    return ev;
  }

  // Read the event stream of POST /v1/answer: "token" {text} -> sink.append, "done" (the AskResponse)
  // is the result, "error" {error, message} rejects. ("citations" is repeated in "done".)
  function readEvents(reader, sink) {
    var decoder = new TextDecoder("utf-8"), buf = "", final = null;
    function handle(block) {
      if (!block.trim()) return;
      var ev = parseEvent(block), data;
      try { data = JSON.parse(ev.data); } catch (e) { throw new ApiError("无法解析服务器返回的回答流", 0); }
      if (ev.event === "token") sink.append(data && data.text != null ? data.text : "");
      else if (ev.event === "done") final = data;
      else if (ev.event === "error") {
        throw new ApiError((data && (data.message || data.error)) || "服务器在回答过程中出错", 0);
      }
    }
    function pump() {
      return reader.read().then(function (r) {
        buf += r.done ? decoder.decode() : decoder.decode(r.value, { stream: true });
        buf = buf.replace(/\r\n/g, "\n");
        var blocks = buf.split("\n\n");
        buf = r.done ? "" : blocks.pop();
        blocks.forEach(handle);
        if (!r.done) return pump();
        if (!final) throw new ApiError("回答流意外中断，请重试", 0);
        return final;
      });
    }
    return pump();
  }

  // Streaming ask: errors before the stream starts are JSON with an HTTP status (shown as for any
  // request); after that the server reports them in-band (event: error).
  function askStream(body, sink) {
    return fetch(API.answer, {
      method: "POST",
      headers: keyHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify(body),
    }).then(function (res) {
      if (!res.ok || !res.body) {
        return readJSON(res).then(function () { throw new ApiError("服务器没有返回回答流", res.status); });
      }
      return readEvents(res.body.getReader(), sink);
    }, networkError);
  }

  function submitQuestion() {
    if (state.busy) return;
    var q = $("question").value.trim();
    var err = $("ask-error");
    err.hidden = true;
    err.replaceChildren();
    if (!q) {
      showAskError("请输入问题。");
      $("question").focus();
      return;
    }
    var k = parseInt($("top-k").value, 10);
    if (!isFinite(k) || k < 1) k = 5;
    if (k > 100) k = 100;
    state.busy = true;
    $("ask-btn").disabled = true;
    setText($("ask-status"), "正在检索并生成回答…");
    var body = askBody(q, k);
    if (state.resp) {  // the answer shown so far joins the thread above
      state.history.push({ question: state.question, resp: state.resp });
      renderThread();
    }
    state.resp = null;
    showQuestion(q);
    answerSink.begin();
    askStream(body, answerSink).then(
      function (resp) {
        state.asked = { doc: body.doc_ids ? body.doc_ids[0] : "", collection: body.collection || "" };
        if (resp.conversation_id) {
          state.conversationId = resp.conversation_id;
          try { window.localStorage.setItem(STORE_KEY, resp.conversation_id); } catch (e) { /* private mode */ }
        }
        $("question").value = "";
        answerSink.end(resp);
        loadConversations();
        setText($("ask-status"), resp.answerable
          ? "已回答（" + (resp.mode === "llm" ? "大模型生成" : "摘录") + "，用时 " + fmt(resp.took_ms, 0) + " 毫秒）。"
          : "文档中没有找到答案。");
      },
      function (e) {
        answerSink.fail();
        setText($("ask-status"), "");
        showAskError(describeError(e, "请求失败"));
      }
    ).then(function () {
      state.busy = false;
      $("ask-btn").disabled = false;
    });
  }

  function showAskError(msg) {
    var err = $("ask-error");
    err.replaceChildren(txt(msg));
    err.hidden = false;
  }

  function citationButton(c) {
    return el("button", {
      type: "button", class: "cite", dataset: { n: String(c.n) }, "aria-controls": "doc-panel",
      "aria-label": "引用 " + c.n + "：" + docTitle(c.doc_id, c.title) + "，查看原文",
      onclick: function (ev) { openCitation(c, ev.currentTarget); },
    }, "[" + c.n + "]");
  }

  // Answer text with each [n] turned into a button when citation n exists; other text stays text.
  function answerWithMarkers(text, citations) {
    var byN = new Map();
    (citations || []).forEach(function (c) { byN.set(c.n, c); });
    var out = [];
    var re = /\[(\d+)\]/g, last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) out.push(text.slice(last, m.index));
      var c = byN.get(parseInt(m[1], 10));
      out.push(c ? citationButton(c) : m[0]);
      last = re.lastIndex;
    }
    if (last < text.length) out.push(text.slice(last));
    return out;
  }

  function renderAnswer() {
    var resp = state.resp, box = $("answer");
    box.replaceChildren();
    if (!resp) return;
    if (!resp.answerable) {
      box.append(el("div", { class: "refusal" },
        el("p", { class: "refusal-msg" }, resp.message || "文档中没有找到这个问题的答案。"),
        el("p", { class: "muted" }, "下面列出的是检索到的最接近的段落，仅供参考，不构成回答。")));
    } else {
      if (resp.short_answer) {
        var sc = (resp.citations || []).filter(function (c) { return c.n === resp.short_citation; })[0];
        box.append(el("p", { class: "short-answer" }, el("span", { class: "muted" }, "简答："),
          el("strong", {}, resp.short_answer), sc ? " " : null, sc ? citationButton(sc) : null));
      }
      box.append(el("p", { class: "answer-text" }, answerWithMarkers(resp.answer || "", resp.citations)));
      if (resp.citations && resp.citations.length) {
        box.append(el("h3", {}, "出处"));
        box.append(el("ol", { class: "citations" }, resp.citations.map(function (c) {
          return el("li", {},
            citationButton(c), " ",
            el("span", { class: "cite-title" }, docTitle(c.doc_id, c.title)),
            el("span", { class: "score" }, " 支持度 " + fmt(c.score, 2)),
            c.supported ? null : el("span", { class: "warn-tag" }, "未能确认原文支持"),
            el("blockquote", {}, c.quote));
        })));
      }
    }
    if (resp.warnings && resp.warnings.length) {
      box.append(el("ul", { class: "warnings", "aria-label": "提示" },
        resp.warnings.map(function (w) { return el("li", {}, w); })));
    }
    box.append(turnFooter(resp));
    if (resp.suggestions && resp.suggestions.length) {  // follow-ups the cited passages answer
      box.append(el("div", { class: "suggestions", role: "group", "aria-label": "可以接着问" },
        el("span", { class: "muted" }, "可以接着问："),
        resp.suggestions.map(function (q) {
          return el("button", { type: "button", class: "suggestion", onclick: function () {
            $("question").value = q;
            submitQuestion();
          } }, q);
        })));
    }
  }

  // ---------- conversation: thread, rewritten query, feedback, past conversations ----------

  function showQuestion(q) {
    state.question = q;
    var node = $("current-question");
    node.replaceChildren(el("span", { class: "muted" }, "问："), q);
    node.hidden = !q;
  }

  // "searched as …" when the server rewrote a follow-up, then 👍/👎 for a stored turn
  function turnFooter(resp) {
    var foot = el("div", { class: "turn-foot" });
    if (resp.query_used && resp.rewrite && resp.rewrite !== "none") {
      foot.append(el("p", { class: "query-used muted" }, "按上下文理解为：", el("q", {}, resp.query_used)));
    }
    if (resp.conversation_id && resp.turn) foot.append(ratingButtons(resp));
    return foot;
  }

  function keyHeaders(extra) {
    var h = extra || {};
    var key = $("api-key").value;
    if (key && !h["X-API-Key"]) h["X-API-Key"] = key;
    return h;
  }

  // ---------- sign-in: GET /v1/me says who the key is; the lists then show only its collections ----------

  function storedKey() {
    try { return window.sessionStorage.getItem(KEY_STORE) || ""; } catch (e) { return ""; }
  }

  function storeKey(key) {
    try {
      if (key) window.sessionStorage.setItem(KEY_STORE, key);
      else window.sessionStorage.removeItem(KEY_STORE);
    } catch (e) { /* storage off: the key stays in the field only */ }
  }

  function showSignedIn(me) {
    var status = $("signin-status");
    var cols = me.collections.indexOf("*") >= 0 ? "全部类别" : (me.collections.join("、") || "无");
    var roles = { reader: "只读", editor: "编辑", admin: "管理员" };
    setText(status, me.authenticated ? "已登录：" + me.name + "（" + (roles[me.role] || me.role) + "，可见：" + cols + "）"
      : (me.collections.indexOf("*") >= 0 ? "" : "未登录：可见 " + cols));
    status.className = "muted";
    $("signout-btn").hidden = !me.authenticated;
    $("signin-btn").hidden = !!me.authenticated;
  }

  function signIn(key) {
    var status = $("signin-status");
    $("api-key").value = key;
    return getJSON(API.me).then(function (me) {
      storeKey(me.authenticated ? key : "");
      showSignedIn(me);
      return me;
    }, function (e) {
      storeKey("");
      $("api-key").value = "";
      setText(status, describeError(e, "登录失败"));
      status.className = "error-text";
      $("signout-btn").hidden = true;
      $("signin-btn").hidden = false;
    }).then(function () {
      loadDocuments();
      loadConversations();
    });
  }

  function signOut() {
    storeKey("");
    $("api-key").value = "";
    newConversation();
    signIn("");
  }

  function ratingButtons(resp) {
    var box = el("div", { class: "rating", role: "group", "aria-label": "这个回答有帮助吗？" });
    var note = el("span", { class: "rating-note muted", role: "status" });
    function button(rating, label, face) {
      var pressed = resp.feedback && resp.feedback.rating === rating;
      return el("button", {
        type: "button", class: "rate", dataset: { rating: rating }, "aria-label": label,
        "aria-pressed": pressed ? "true" : "false",
        onclick: function () { rate(resp, rating, box, note); },
      }, face);
    }
    // the words too: the emoji alone is a blank box where no emoji font is installed
    box.append(button("up", "有帮助", "👍 有用"), button("down", "没有帮助", "👎 没用"), note);
    return box;
  }

  function rate(resp, rating, box, note) {
    request(API.feedback, {
      method: "POST", headers: keyHeaders({ "Content-Type": "application/json", Accept: "application/json" }),
      body: JSON.stringify({ conversation_id: resp.conversation_id, turn: resp.turn, rating: rating }),
    }).then(function () {
      resp.feedback = { rating: rating };
      box.querySelectorAll("button.rate").forEach(function (b) {
        b.setAttribute("aria-pressed", b.dataset.rating === rating ? "true" : "false");
      });
      setText(note, "已记录，谢谢。");
    }, function (e) { setText(note, describeError(e, "未能记录")); });
  }

  function renderThread() {
    var list = $("thread");
    list.replaceChildren();
    state.history.forEach(function (h) {
      var r = h.resp || {};
      list.append(el("li", { class: "turn", dataset: { turn: String(r.turn || "") } },
        el("p", { class: "turn-q" }, el("span", { class: "muted" }, "问："), h.question),
        r.answerable
          ? el("div", { class: "turn-a" },
            r.short_answer ? el("p", { class: "short-answer" }, el("span", { class: "muted" }, "简答："),
              el("strong", {}, r.short_answer)) : null,
            el("p", { class: "answer-text" }, answerWithMarkers(r.answer || "", r.citations)))
          : el("p", { class: "turn-a refusal-msg" }, r.message || "文档中没有找到这个问题的答案。"),
        turnFooter(r)));
    });
  }

  function newConversation() {
    state.conversationId = null;
    state.history = [];
    state.resp = null;
    try { window.localStorage.removeItem(STORE_KEY); } catch (e) { /* private mode */ }
    renderThread();
    showQuestion("");
    $("answer").replaceChildren(el("p", { class: "muted" }, "提出问题后，回答会显示在这里；点击 [n] 查看原文出处。"));
    renderPassages();
    $("question").focus();
  }

  // A stored turn (GET /v1/conversations/{id}) in the shape of an answer response
  function storedResp(id, t) {
    return { answer: t.answerable ? t.answer : "", answerable: !!t.answerable, message: t.answerable ? "" : t.answer,
             short_answer: t.short_answer, short_citation: null, citations: t.citations || [], passages: [],
             warnings: t.warnings || [], mode: t.mode, conversation_id: id, turn: t.turn, query_used: t.query,
             rewrite: t.rewrite, feedback: t.feedback };
  }

  function openConversation(id) {
    return request(API.conversations + "/" + encodeURIComponent(id),
                   { headers: keyHeaders({ Accept: "application/json" }) }).then(function (c) {
      var turns = (c.turns || []).filter(function (t) { return t.status === "done"; });
      state.conversationId = c.id;
      try { window.localStorage.setItem(STORE_KEY, c.id); } catch (e) { /* private mode */ }
      state.history = turns.slice(0, -1).map(function (t) { return { question: t.question, resp: storedResp(c.id, t) }; });
      renderThread();
      var last = turns[turns.length - 1];
      if (last) {
        showQuestion(last.question);
        state.resp = storedResp(c.id, last);
        renderAnswer();
      } else {
        showQuestion("");
        state.resp = null;
      }
      renderPassages();
    }, function (e) {
      if (e.status === 404) {  // deleted or expired: start afresh
        try { window.localStorage.removeItem(STORE_KEY); } catch (x) { /* private mode */ }
        state.conversationId = null;
      }
      throw e;
    });
  }

  function loadConversations() {
    var note = $("convos-note"), list = $("convo-list");
    return request(API.conversations + "?limit=20", { headers: keyHeaders({ Accept: "application/json" }) }).then(
      function (body) {
        var rows = (body && body.conversations) || [];
        list.replaceChildren();
        rows.forEach(function (c) {
          list.append(el("li", {}, el("button", {
            type: "button", class: "linkish", dataset: { id: c.id },
            "aria-current": c.id === state.conversationId ? "true" : null,
            onclick: function () {
              openConversation(c.id).catch(function (e) { setText(note, describeError(e, "打开对话失败")); });
            },
          }, c.title || c.id), el("span", { class: "muted" }, " · " + c.turns + " 轮 · " + c.updated.replace("T", " ").slice(0, 16))));
        });
        setText(note, rows.length ? "点击一个对话继续追问。" : "还没有对话。");
      },
      function (e) {
        list.replaceChildren();
        setText(note, e.status === 404 ? "服务器未保存对话。"
          : e.status === 401 || e.status === 403 ? "查看历史对话需要 API 密钥（填在“上传文档”处）。"
            : describeError(e, "历史对话加载失败"));
      });
  }

  function renderPassages() {
    var list = $("passages"), note = $("passages-note");
    list.replaceChildren();
    var resp = state.resp;
    if (!resp) {
      setText(note, "提问后，这里列出检索到的段落及其得分。");
      return;
    }
    var all = resp.passages || [];
    var filtering = !!(state.filter || state.collection);
    var shown = all.filter(function (p) {
      return (!state.filter || p.doc_id === state.filter)
        && (!state.collection || collectionOf(p.doc_id) === state.collection);
    });
    // the filters changed since this answer was retrieved: asking again searches the new scope
    var stale = state.asked && (state.asked.doc !== state.filter || state.asked.collection !== state.collection)
      ? "筛选条件已改变，重新提问可按新的范围检索。" : "";
    var cited = new Map();
    (resp.citations || []).forEach(function (c) {
      if (!cited.has(c.chunk_id)) cited.set(c.chunk_id, []);
      cited.get(c.chunk_id).push(c.n);
    });
    if (!all.length) setText(note, "没有检索到段落。" + stale);
    else if (filtering) {
      setText(note, "已按" + (state.filter ? "文档" : "类别") + "筛选：显示 " + shown.length + " / " + all.length + " 条"
        + (shown.length ? "。" : "，所选范围中没有检索到段落。") + stale);
    } else setText(note, "共 " + all.length + " 条，按相关度排序。点击标题查看原文位置。" + stale);

    shown.forEach(function (p) {
      var ns = cited.get(p.chunk_id);
      var title = "#" + p.rank + " " + docTitle(p.doc_id, p.title) + (p.section ? " · " + p.section : "");
      list.append(el("li", { class: "passage", dataset: { docId: p.doc_id, chunkId: String(p.chunk_id) } },
        el("button", {
          type: "button", class: "linkish passage-open", "aria-controls": "doc-panel",
          onclick: function (ev) { openPassage(p, ev.currentTarget); },
        }, title),
        el("p", { class: "scores" },
          "得分 " + fmt(p.score, 4) + " · 向量 " + fmt(p.dense_score, 3) + " · BM25 " + fmt(p.bm25_score, 2),
          ns ? el("span", { class: "badge" }, "被引用 " + ns.map(function (n) { return "[" + n + "]"; }).join("")) : null,
          p.kind && p.kind !== "body" ? el("span", { class: "badge" }, p.kind) : null),
        el("p", { class: "snippet" }, p.text)));
    });
  }

  // ---------- document panel ----------

  function fetchDocument(docId) {
    if (state.docCache.has(docId)) return Promise.resolve(state.docCache.get(docId));
    return getJSON(API.documents + "/" + encodeURIComponent(docId)).then(function (d) {
      state.docCache.set(docId, d);
      return d;
    });
  }

  function openCitation(c, trigger) {
    openDocument(c.doc_id, {
      mark: [c.quote_start, c.quote_end], context: [c.start, c.end],
      label: "引用 [" + c.n + "]：第 " + c.quote_start + "–" + c.quote_end + " 字",
    }, trigger);
  }

  function openPassage(p, trigger) {
    openDocument(p.doc_id, {
      mark: [p.start, p.end], context: null,
      label: "检索段落 #" + p.rank + "：第 " + p.start + "–" + p.end + " 字",
    }, trigger);
  }

  // Split text at the span boundaries: <mark> for the quote, span.ctx for the rest of its passage.
  function highlighted(text, span) {
    var n = text.length;
    var clamp = function (x) { return Math.max(0, Math.min(n, x | 0)); };
    var ms = clamp(span.mark[0]), me = clamp(span.mark[1]);
    var cs = span.context ? clamp(span.context[0]) : ms, ce = span.context ? clamp(span.context[1]) : me;
    var cuts = [0, n, ms, me, cs, ce].filter(function (x, i, a) { return a.indexOf(x) === i; })
      .sort(function (a, b) { return a - b; });
    var out = [], mark = null;
    for (var i = 0; i + 1 < cuts.length; i++) {
      var a = cuts[i], b = cuts[i + 1], piece = text.slice(a, b);
      if (a >= ms && b <= me && me > ms) {
        mark = el("mark", {}, piece);
        out.push(mark);
      } else if (a >= cs && b <= ce && ce > cs) {
        out.push(el("span", { class: "ctx" }, piece));
      } else out.push(piece);
    }
    return { nodes: out, mark: mark };
  }

  function openDocument(docId, span, trigger) {
    var panel = $("doc-panel"), body = $("panel-body");
    var req = ++state.panelRequest;
    state.panelTrigger = trigger || null;
    setText($("panel-title"), docTitle(docId));
    setText($("panel-meta"), "正在加载原文…");
    body.replaceChildren();
    showPanel();
    fetchDocument(docId).then(
      function (d) {
        if (req !== state.panelRequest) return;  // a later click won
        setText($("panel-title"), d.title || d.doc_id);
        var meta = d.doc_id + " · " + d.chars + " 字" + (span ? " · " + span.label : "");
        setText($("panel-meta"), meta);
        var text = d.text || "";
        if (span) {
          var h = highlighted(text, span);
          body.replaceChildren.apply(body, h.nodes.map(function (x) { return typeof x === "string" ? txt(x) : x; }));
          if (h.mark) scrollToMark(h.mark);
        } else {
          body.replaceChildren(txt(text));
          panel.scrollTop = 0;
        }
      },
      function (e) {
        if (req !== state.panelRequest) return;
        setText($("panel-meta"), "");
        body.replaceChildren(el("p", { class: "error-text", role: "alert" }, describeError(e, "原文加载失败")));
      }
    );
  }

  function scrollToMark(mark) {
    var panel = $("doc-panel");
    // Scroll inside the panel only (the page keeps its place); then make sure the panel is on screen.
    panel.scrollTop = Math.max(0, mark.offsetTop - panel.clientHeight / 3);
    var r = mark.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) mark.scrollIntoView({ block: "center" });
  }

  function isPhone() { return window.matchMedia("(max-width: 899px)").matches; }

  function showPanel() {
    var panel = $("doc-panel");
    panel.dataset.open = "true";
    if (isPhone()) document.body.classList.add("panel-open");
    $("panel-title").focus({ preventScroll: true });
  }

  function closePanel() {
    var panel = $("doc-panel");
    panel.dataset.open = "false";
    document.body.classList.remove("panel-open");
    state.panelRequest++;
    setText($("panel-title"), "原文");
    setText($("panel-meta"), "");
    $("panel-body").replaceChildren(el("p", { class: "muted" },
      "点击答案中的 [n] 或某个检索段落，在这里查看原文，引用处会高亮显示。"));
    var back = state.panelTrigger;
    state.panelTrigger = null;
    if (back && document.body.contains(back)) back.focus();
  }

  // ---------- upload ----------

  function upload() {
    var status = $("upload-status");
    var file = $("upload-file").files[0];
    if (!file) {
      setText(status, "请先选择要上传的文件。");
      status.className = "status error-text";
      $("upload-file").focus();
      return;
    }
    var key = $("api-key").value;
    var collection = $("upload-collection").value.trim();
    var fd = new FormData();
    fd.append("files", file, file.name);
    if (collection) fd.append("collection", collection);
    var headers = { Accept: "application/json" };
    if (key) headers["X-API-Key"] = key;
    $("upload-btn").disabled = true;
    setText(status, "正在上传 " + file.name + "…");
    status.className = "status";
    request(API.documents, { method: "POST", headers: headers, body: fd }).then(
      function (body) {
        if (body && body.job_id) return followJob(body.location, file.name, headers, status);  // 202: a job
        var same = body && body.unchanged && body.unchanged.length && !(body.added || []).length
          && !(body.replaced || []).length;
        setText(status, "已上传：" + file.name + (same ? "（内容与已有版本相同，未改动）" : ""));
        status.className = "status ok-text";
        state.docCache.clear();
        loadDocuments();
        loadHealth();
      },
      function (e) {
        var hint = e.status === 404 || e.status === 405 ? "（服务器暂不支持上传）" : "";
        setText(status, describeError(e, "上传失败") + hint);
        status.className = "status error-text";
      }
    ).then(function () { $("upload-btn").disabled = false; });
  }

  // A big upload (or a long scan) is a background job (202): poll GET /v1/jobs/{id} until it is done, failed or
  // cancelled, showing the files and OCR pages done so far.
  function followJob(location, name, headers, status) {
    return new Promise(function (resolve) {
      function fail(e) {
        setText(status, describeError(e, "上传失败"));
        status.className = "status error-text";
        resolve();
      }
      function poll() {
        request(location, { headers: headers }).then(function (job) {
          var p = job.progress || {};
          if (job.status === "done") {
            var bad = (job.errors || []).map(function (e) { return e.error; }).join("；");
            setText(status, "已上传：" + name + (bad ? "（未能读取：" + bad + "）" : ""));
            status.className = "status ok-text";
            state.docCache.clear();
            loadDocuments();
            loadHealth();
            resolve();
          } else if (job.status === "failed" || job.status === "cancelled") {
            fail(new ApiError(job.message || (job.status === "cancelled" ? "已取消" : "后台处理失败"), 0));
          } else {
            setText(status, "正在后台处理 " + name + "…" + (p.pages_total ? "（识别第 " + p.pages_done + "/"
              + p.pages_total + " 页）" : job.stage === "indexing" ? "（写入索引）" : ""));
            setTimeout(poll, 1000);
          }
        }, fail);
      }
      poll();
    });
  }

  // ---------- wiring ----------

  function init() {
    registerStatic();

    var q = $("question"), composing = false;
    q.addEventListener("compositionstart", function () { composing = true; });
    q.addEventListener("compositionend", function () { composing = false; });
    q.addEventListener("keydown", function (e) {
      if (e.key !== "Enter" || e.shiftKey) return;          // Shift+Enter: newline
      if (e.isComposing || composing || e.keyCode === 229) return;  // IME is choosing characters
      e.preventDefault();
      submitQuestion();
    });
    $("ask-form").addEventListener("submit", function (e) { e.preventDefault(); submitQuestion(); });

    $("doc-filter").addEventListener("change", function (e) {
      state.filter = e.target.value;
      renderPassages();
    });
    $("collection-filter").addEventListener("change", function (e) {
      state.collection = e.target.value;
      renderFilterOptions();
      renderPassages();
    });
    $("answer-mode").addEventListener("change", function () { state.modeTouched = true; });

    $("lang").addEventListener("change", function (e) {
      state.lang = e.target.value === "traditional" ? "traditional" : "simplified";
      applyLanguage();
    });

    $("panel-close").addEventListener("click", closePanel);
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && $("doc-panel").dataset.open === "true") closePanel();
    });

    $("upload-form").addEventListener("submit", function (e) { e.preventDefault(); upload(); });
    $("signin-form").addEventListener("submit", function (e) { e.preventDefault(); signIn($("api-key").value.trim()); });
    $("signout-btn").addEventListener("click", signOut);
    if (storedKey()) $("api-key").value = storedKey();
    $("new-convo").addEventListener("click", newConversation);

    renderPassages();
    loadHealth();
    if (storedKey()) {
      getJSON(API.me).then(showSignedIn, function () { /* shown when the lists fail */ });
    }
    loadDocuments();
    var saved = null;
    try { saved = window.localStorage.getItem(STORE_KEY); } catch (e) { saved = null; }
    if (saved) openConversation(saved).catch(function () { /* gone: a new conversation */ });
    loadConversations();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
