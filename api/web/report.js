/* Questions report page (issue 16): GET /v1/report with the API key; CSV export. Text only via text nodes. */
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text != null) n.textContent = String(text);
    return n;
  }

  function headers() {
    var h = { Accept: "application/json" };
    var key = $("report-key").value;
    if (key) h["X-API-Key"] = key;
    return h;
  }

  function days() {
    var d = parseFloat($("report-days").value);
    return isFinite(d) && d >= 0 ? d : 30;
  }

  function fail(res) {
    return res.text().then(function (raw) {
      var msg = res.statusText;
      try { msg = JSON.parse(raw).message || msg; } catch (e) { /* not JSON */ }
      throw new Error("HTTP " + res.status + "：" + msg);
    });
  }

  function row(cells) {
    var tr = el("tr");
    cells.forEach(function (c, i) { tr.append(el("td", i ? "num" : "", c)); });
    return tr;
  }

  function render(r) {
    var lat = r.latency_ms || {};
    $("report-summary").textContent = "共 " + r.turns + " 个问题、" + r.conversations + " 个对话：回答 " + r.answered
      + "，未答 " + r.refused + "，追问改写 " + r.rewritten + "；👍 有用 " + r.feedback.up + "，👎 没用 " + r.feedback.down
      + "；耗时 p50 " + lat.p50 + " / p90 " + lat.p90 + " / p95 " + lat.p95 + " / p99 " + lat.p99 + " 毫秒。";
    $("asked-body").replaceChildren.apply($("asked-body"), r.most_asked.map(function (e) {
      return row([e.query, e.count, e.refused, e.down]);
    }));
    $("refused-body").replaceChildren.apply($("refused-body"), r.refused_questions.map(function (e) {
      return row([e.query, e.refused]);
    }));
    $("down-list").replaceChildren.apply($("down-list"), r.rated_down.map(function (d) {
      var li = el("li", "passage");
      li.append(el("p", "turn-q", d.query), el("p", "snippet", d.answer),
        el("p", "muted", d.created + (d.comment ? " · 意见：" + d.comment : "")));
      return li;
    }));
  }

  function load() {
    var status = $("report-status");
    status.textContent = "正在加载…";
    fetch("/v1/report?top=50&days=" + days(), { headers: headers() }).then(function (res) {
      return res.ok ? res.json() : fail(res);
    }).then(function (r) { render(r); status.textContent = "已更新。"; },
      function (e) { status.textContent = "加载失败（" + e.message + "）"; });
  }

  function exportCsv() {
    var status = $("report-status");
    fetch("/v1/report?format=csv&days=" + days(), { headers: headers() }).then(function (res) {
      return res.ok ? res.blob() : fail(res);
    }).then(function (blob) {
      var a = el("a");
      a.href = URL.createObjectURL(blob);
      a.download = "questions.csv";
      document.body.append(a);
      a.click();
      a.remove();
      status.textContent = "已导出 questions.csv。";
    }, function (e) { status.textContent = "导出失败（" + e.message + "）"; });
  }

  // the key the main page signed in with (issue 20: this tab's sessionStorage), unless one is typed here
  try { $("report-key").value = $("report-key").value || window.sessionStorage.getItem("rag.apiKey") || ""; }
  catch (e) { /* storage off */ }
  $("report-form").addEventListener("submit", function (e) { e.preventDefault(); load(); });
  $("report-csv").addEventListener("click", exportCsv);
  load();
})();
