// buildyard dashboard: live log follow (Server-Sent Events) and the metrics charts (uPlot).
// No inline scripts: the pages are served with a Content-Security-Policy of script-src 'self'.
(function () {
  "use strict";

  function followLog(pre) {
    var url = pre.getAttribute("data-stream");
    if (!url || !window.EventSource) { return; }
    var state = document.getElementById("follow-state");
    var source = new EventSource(url);
    source.addEventListener("open", function () { pre.setAttribute("data-open", String(Date.now())); });
    source.addEventListener("lines", function (event) {
      var data = JSON.parse(event.data);
      var nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
      var frag = document.createDocumentFragment();
      data.lines.forEach(function (line) {
        var row = document.createElement("span");
        row.className = "ln";
        row.id = "L" + line.n;
        var a = document.createElement("a");
        a.className = "n";
        a.href = "#L" + line.n;
        a.textContent = String(line.n);
        var text = document.createElement("span");
        text.className = "t";
        text.innerHTML = line.html; // escaped by the server (buildyard.server.web.logview)
        row.appendChild(a);
        row.appendChild(text);
        frag.appendChild(row);
        frag.appendChild(document.createTextNode("\n"));
      });
      pre.appendChild(frag);
      if (nearBottom) { window.scrollTo(0, document.body.scrollHeight); }
    });
    source.addEventListener("end", function (event) {
      source.close();
      var data = JSON.parse(event.data);
      if (state) { state.textContent = "finished: " + data.status; }
      var badge = document.querySelector("#job-status .st");
      if (badge) {  // the status word (and its class) as the job ended; the icon is left as drawn
        badge.className = "st s-" + data.status.replace(/[^a-z_]/g, "");
        badge.lastChild.textContent = " " + data.status;
      }
      pre.setAttribute("data-finished", data.status);
    });
  }

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }

  function chart(el) {
    if (!window.uPlot) { return; }
    var spec = JSON.parse(el.getAttribute("data-chart"));
    var width = Math.max(280, Math.min(el.clientWidth || 600, 1100));
    var axes = [{stroke: css("--muted")}, {stroke: css("--muted")}];
    var opts, rows;
    if (spec.kind === "duration" || spec.kind === "success") {
      var days = spec.daily.map(function (d) { return d.day; });
      if (spec.kind === "duration") {
        rows = [days, spec.daily.map(function (d) { return d.p50_s; }), spec.daily.map(function (d) { return d.p95_s; })];
        opts = {title: "Run duration (s): p50 and p95", series: [{}, {label: "p50", stroke: css("--info"), spanGaps: true},
          {label: "p95", stroke: css("--warn"), dash: [6, 4], spanGaps: true}]};
      } else {
        rows = [days, spec.daily.map(function (d) { return d.success_rate === null ? null : d.success_rate * 100; }),
          spec.daily.map(function (d) { return d.queue_p50_s; })];
        opts = {title: "Success rate (%) and queue time p50 (s)", series: [{}, {label: "success %", stroke: css("--ok"), spanGaps: true},
          {label: "queue p50 s", stroke: css("--muted"), dash: [2, 3], spanGaps: true}]};
      }
    } else {
      var times = {};
      spec.slowest.forEach(function (s) { s.trend.forEach(function (p) { times[p[0]] = true; }); });
      var xs = Object.keys(times).map(Number).sort(function (a, b) { return a - b; });
      var index = {};
      xs.forEach(function (x, i) { index[x] = i; });
      rows = [xs];
      var series = [{}];
      var dashes = [[], [6, 3], [2, 2], [8, 2, 2, 2]];
      spec.slowest.forEach(function (s, i) {
        var ys = xs.map(function () { return null; });
        s.trend.forEach(function (p) { ys[index[p[0]]] = p[1]; });
        rows.push(ys);
        series.push({label: s.id, stroke: "hsl(" + (i * 36) + ",65%,50%)", dash: dashes[i % 4], spanGaps: true});
      });
      if (xs.length === 0) { el.textContent = "No job durations in this range."; return; }
      opts = {title: "Duration of the 10 slowest jobs (s), mean per day", series: series,
        scales: {x: {time: true, range: function () { return spec.range; }}}};
    }
    opts.width = width;
    opts.height = 220;
    opts.axes = axes;
    new window.uPlot(opts, rows, el);
  }

  function start() {
    var pre = document.getElementById("log");
    if (pre) { followLog(pre); }
    Array.prototype.forEach.call(document.querySelectorAll(".chart[data-chart]"), chart);
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
