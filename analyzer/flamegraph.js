/* pymem flame graph: the page's renderer, embedded by `pymem flamegraph`
 * into a self-contained HTML file (no request of any kind leaves the page:
 * the data is in the page, and a Content-Security-Policy forbids the rest).
 * Names are only ever set as text (textContent, canvas fillText), never
 * parsed as HTML. Data: frames {n: names, f: files, l: lines, k: kinds
 * (0 Python, 1 native, 2 a thread: threads: true puts one under the root
 * per thread), lib: 1 for library frames}, nodes {p: parent, f:
 * frame, v: bytes, b: blocks, and in a diff d: growth} in an order where
 * parents come first; node 0 is the root. time {t: checkpoint times (ns),
 * labels, p, f: a tree of every stack live at a checkpoint, v: its values,
 * one per checkpoint for each node}: dragging across the chart shows the
 * window's tree, live at the checkpoint that ends it and coloured by what
 * grew since the one before its start. */
(function () {
  "use strict";
  var started = performance.now();
  var D = JSON.parse(document.getElementById("pymem-data").textContent);
  var F = D.frames, N = D.nodes;
  var canvas = document.getElementById("fg"), ctx = canvas.getContext("2d");
  var tip = document.getElementById("tip"), crumbs = document.getElementById("crumbs");
  var searchBox = document.getElementById("search"), found = document.getElementById("found");
  var ROW = 18;
  var state = {inverted: false, hideLib: false, hideNative: false, zoom: 0, search: "", window: null};
  var T = D.time;
  var tree; /* the derived tree: {frame, v, b, kids: [], parent} */
  var rects = []; /* drawn: {x, y, w, node} */

  function human(b) {
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    b = Math.abs(b);
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i ? b.toFixed(1) : b.toFixed(0)) + " " + u[i];
  }

  function frameName(fi) {
    if (fi < 0) return fi === -2 ? "other (frames under 0.01% each)" : "all";
    if (F.k[fi] === 2) return F.n[fi];
    var line = F.l[fi] ? ":" + F.l[fi] : "";
    return F.n[fi] + " (" + F.f[fi] + line + ")";
  }

  /* The tree the page shows: the capture's, with hidden frames lifted out
   * (their children join their parent, same frames merged). Each node's
   * own bytes (total minus its children's) go to its shown ancestor. */
  function derive() {
    /* the source: the page's tree, or the window's (values at its end,
     * growth since its start; no block counts) */
    var w = state.window, K = T ? T.t.length : 0;
    var P = w ? T.p : N.p, Fr = w ? T.f : N.f;
    var V = w ? function (i) { return T.v[i * K + w.b]; } : function (i) { return N.v[i]; };
    var B = w ? function () { return 0; } : function (i) { return N.b[i]; };
    var Dl = w ? function (i) { return T.v[i * K + w.b] - (w.a >= 0 ? T.v[i * K + w.a] : 0); }
      : function (i) { return D.diff ? N.d[i] : 0; };
    var n = P.length, own = new Float64Array(n), ownb = new Float64Array(n), ownd = new Float64Array(n), i;
    for (i = 0; i < n; i++) { own[i] = V(i); ownb[i] = B(i); ownd[i] = Dl(i); }
    for (i = 1; i < n; i++) { own[P[i]] -= V(i); ownb[P[i]] -= B(i); ownd[P[i]] -= Dl(i); }
    var map = new Array(n);
    var root = {frame: -1, v: 0, b: 0, d: 0, kids: [], byFrame: {}, parent: null};
    map[0] = root;
    for (i = 1; i < n; i++) {
      var up = map[P[i]], fi = Fr[i];
      var hidden = fi >= 0 && ((state.hideLib && F.lib[fi]) || (state.hideNative && F.k[fi] === 1));
      if (hidden) { map[i] = up; continue; }
      var key = String(fi), node = up.byFrame[key];
      if (!node) {
        node = {frame: fi, v: 0, b: 0, d: 0, kids: [], byFrame: {}, parent: up};
        up.byFrame[key] = node;
        up.kids.push(node);
      }
      map[i] = node;
    }
    for (i = 0; i < n; i++) {
      for (var x = map[i]; x; x = x.parent) { x.v += own[i]; x.b += ownb[i]; x.d += ownd[i]; }
    }
    (function sort(x) { x.kids.sort(function (a, b) { return b.v - a.v; }); x.kids.forEach(sort); })(root);
    return root;
  }

  /* A diff: red as the frame grew, blue as it shrank, relative to its width. */
  function diffColour(x) {
    var r = x.d / Math.max(x.v, Math.abs(x.d), 1);
    return r >= 0 ? "hsl(0,85%," + (95 - 45 * r).toFixed(0) + "%)" : "hsl(220,85%," + (95 + 45 * r).toFixed(0) + "%)";
  }

  function signed(b) { return (b < 0 ? "-" : "+") + human(b); }

  function matches(x) {
    return state.search && x.frame >= 0 && frameName(x.frame).toLowerCase().indexOf(state.search) >= 0;
  }

  function depthOf(x) { var d = 0; for (; x.parent; x = x.parent) d++; return d; }

  function draw() {
    var zoom = state.zoom || tree, width = canvas.clientWidth;
    var maxDepth = 0;
    (function deepest(x, d) { if (d > maxDepth) maxDepth = d; x.kids.forEach(function (k) { deepest(k, d + 1); }); })(zoom, 0);
    var base = depthOf(zoom);
    canvas.width = width * (window.devicePixelRatio || 1);
    canvas.height = (maxDepth + 1) * ROW * (window.devicePixelRatio || 1);
    canvas.style.height = (maxDepth + 1) * ROW + "px";
    ctx.setTransform(window.devicePixelRatio || 1, 0, 0, window.devicePixelRatio || 1, 0, 0);
    ctx.font = "12px sans-serif";
    ctx.textBaseline = "middle";
    rects = [];
    var total = zoom.v || 1;
    function place(x, left, d) {
      var w = width * x.v / total;
      if (w < 0.5) return;
      var y = state.inverted ? d * ROW : (maxDepth - d) * ROW;
      var hit = matches(x);
      var hue = x.frame >= 0 && F.k[x.frame] === 2 ? 250 : x.frame >= 0 && F.k[x.frame] ? 200 : 20 + (x.frame * 37) % 40;
      ctx.fillStyle = hit ? "#e040fb" : D.diff || state.window ? diffColour(x) : x.frame === -2 ? "#bbb" :
        "hsl(" + hue + ",80%," + (60 + (x.frame * 7) % 15) + "%)";
      ctx.fillRect(left, y, Math.max(w - 1, 0.5), ROW - 1);
      if (w > 30) {
        ctx.fillStyle = "#000";
        ctx.save();
        ctx.beginPath();
        ctx.rect(left, y, w - 2, ROW);
        ctx.clip();
        ctx.fillText(frameName(x.frame), left + 3, y + ROW / 2);
        ctx.restore();
      }
      rects.push({x: left, y: y, w: w, node: x});
      var at = left;
      x.kids.forEach(function (k) { place(k, at, d + 1); at += width * k.v / total; });
    }
    place(zoom, 0, 0);
    crumbs.textContent = "";
    var path = [];
    for (var x = zoom; x; x = x.parent) path.unshift(x);
    path.forEach(function (p, i) {
      var a = document.createElement("a");
      a.href = "#";
      a.textContent = (i ? " > " : "") + frameName(p.frame);
      a.onclick = function (e) { e.preventDefault(); state.zoom = p === tree ? 0 : p; draw(); };
      crumbs.appendChild(a);
    });
    if (state.search) {
      var sum = 0;
      (function walk(x) { if (matches(x)) { sum += x.v; return; } x.kids.forEach(walk); })(tree);
      found.textContent = "matches: " + human(sum) + " (" + (100 * sum / (tree.v || 1)).toFixed(2) + "% of all)";
      found.dataset.bytes = String(sum);
    } else {
      found.textContent = "";
      found.dataset.bytes = "0";
    }
    document.getElementById("total").textContent = human(tree.v) + (state.window ? "" : " in " + tree.b + " blocks") +
      (D.diff || state.window ? " (" + signed(tree.d) + " since the first point)" : "");
    document.getElementById("total").dataset.bytes = String(tree.v);
    document.getElementById("total").dataset.grew = String(tree.d);
    return base;
  }

  function at(ev) {
    var r = canvas.getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top;
    for (var i = rects.length - 1; i >= 0; i--) {
      var q = rects[i];
      if (x >= q.x && x < q.x + q.w && y >= q.y && y < q.y + ROW) return q.node;
    }
    return null;
  }

  canvas.addEventListener("mousemove", function (ev) {
    var x = at(ev);
    if (!x) { tip.style.display = "none"; return; }
    tip.textContent = frameName(x.frame) + "\n" + human(x.v) + (state.window ? "" : " in " + x.b + " blocks") + ", " +
      (100 * x.v / (tree.v || 1)).toFixed(2) + "% of all" +
      (D.diff || state.window ? "\n" + signed(x.d) + " since the first point" : "");
    tip.style.left = ev.pageX + 12 + "px";
    tip.style.top = ev.pageY + 12 + "px";
    tip.style.display = "block";
  });
  canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  canvas.addEventListener("click", function (ev) {
    var x = at(ev);
    if (x) { state.zoom = x === tree ? 0 : x; draw(); }
  });
  searchBox.addEventListener("input", function () { state.search = searchBox.value.toLowerCase(); draw(); });
  /* The thread filter (a graph split by thread): zooms to one thread's root. */
  var threadSel = document.getElementById("threadsel");
  function fillThreads() {
    if (!D.threads || !threadSel) return;
    threadSel.hidden = false;
    threadSel.textContent = "";
    var all = document.createElement("option");
    all.value = "";
    all.textContent = "all threads";
    threadSel.appendChild(all);
    tree.kids.forEach(function (k, i) {
      if (k.frame < 0 || F.k[k.frame] !== 2) return;
      var o = document.createElement("option");
      o.value = String(i);
      o.textContent = F.n[k.frame] + " (" + human(k.v) + ")";
      threadSel.appendChild(o);
    });
  }
  if (threadSel) threadSel.addEventListener("change", function () {
    state.zoom = threadSel.value === "" ? 0 : tree.kids[+threadSel.value];
    draw();
  });

  function toggle(id, key) {
    document.getElementById(id).addEventListener("change", function (e) {
      state[key] = e.target.checked;
      if (key !== "inverted") { tree = derive(); state.zoom = 0; fillThreads(); }
      draw();
    });
  }
  toggle("inverted", "inverted");
  toggle("hidelib", "hideLib");
  toggle("hidenative", "hideNative");
  window.addEventListener("resize", draw);

  /* The time window: drag across the chart; its tree is live at the last
   * checkpoint in it, and coloured by what grew since the last checkpoint
   * before it (or the start). */
  var chart = document.querySelector("#chart svg"), banner = null, band = null;
  function checkpointAt(t) {
    var k = -1;
    for (var i = 0; i < T.t.length; i++) if (T.t[i] <= t) k = i;
    return k;
  }
  function setWindow(t0, t1) {
    if (!T) return;
    var a = checkpointAt(t0), b = checkpointAt(t1);
    if (b < 0 || b === a) b = Math.min(a + 1, T.t.length - 1);
    state.window = t1 > t0 || a !== b ? {a: a, b: b, t0: t0, t1: t1} : null;
    banner.textContent = "";
    if (state.window) {
      var from = a >= 0 ? "'" + T.labels[a] + "' (" + (T.t[a] / 1e9).toFixed(3) + " s)" : "the start";
      banner.appendChild(document.createTextNode("window " + (t0 / 1e9).toFixed(3) + "-" + (t1 / 1e9).toFixed(3) +
        " s: live at '" + T.labels[b] + "' (" + (T.t[b] / 1e9).toFixed(3) + " s), red grew since " + from + " "));
      var back = document.createElement("a");
      back.href = "#";
      back.textContent = "(back to the whole page)";
      back.onclick = function (e) { e.preventDefault(); setWindow(0, 0); };
      banner.appendChild(back);
      var L = +chart.dataset.plotLeft, R = +chart.dataset.plotRight, dur = +chart.dataset.durationNs || 1;
      band.setAttribute("x", String(L + (R - L) * t0 / dur));
      band.setAttribute("width", String(Math.max((R - L) * (t1 - t0) / dur, 1)));
      band.setAttribute("display", "inline");
    } else {
      band.setAttribute("display", "none");
    }
    tree = derive();
    state.zoom = 0;
    fillThreads();
    draw();
  }
  if (T && chart) {
    banner = document.createElement("div");
    banner.className = "bar";
    banner.id = "window";
    chart.parentNode.insertBefore(banner, chart);
    band = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    band.setAttribute("y", chart.dataset.plotTop);
    band.setAttribute("height", String(chart.dataset.plotBottom - chart.dataset.plotTop));
    band.setAttribute("fill", "#fc0");
    band.setAttribute("fill-opacity", "0.25");
    band.setAttribute("display", "none");
    chart.appendChild(band);
    chart.style.cursor = "crosshair";
    var startX = null;
    var timeAt = function (clientX) {
      var r = chart.getBoundingClientRect(), vb = chart.viewBox.baseVal;
      var x = (clientX - r.left) * vb.width / r.width;
      var L = +chart.dataset.plotLeft, R = +chart.dataset.plotRight;
      return Math.max(0, Math.min(1, (x - L) / (R - L))) * +chart.dataset.durationNs;
    };
    chart.addEventListener("mousedown", function (ev) { startX = ev.clientX; ev.preventDefault(); });
    chart.addEventListener("mouseup", function (ev) {
      if (startX === null) return;
      var t0 = timeAt(Math.min(startX, ev.clientX)), t1 = timeAt(Math.max(startX, ev.clientX));
      startX = null;
      setWindow(t0, t1);
    });
  }

  tree = derive();
  fillThreads();
  draw();
  var firstDrawMs = performance.now() - started;

  /* `#selftest=NAME`: the browser test's checks, written into the page. */
  if (location.hash.indexOf("#selftest=window:") === 0 && T) {
    /* `#selftest=window:LABEL_A:LABEL_B`: the window from one checkpoint to
     * another; then a drag across the whole chart, as a user makes it */
    var names = decodeURIComponent(location.hash.slice(17)).split(":");
    setWindow(T.t[T.labels.indexOf(names[0])], T.t[T.labels.indexOf(names[1])]);
    var res = {windowBytes: tree.v, windowGrowth: tree.d, banner: banner.textContent, checkpoints: T.t.length};
    var r0 = chart.getBoundingClientRect();
    chart.dispatchEvent(new MouseEvent("mousedown", {clientX: r0.left + 1, clientY: r0.top + 50}));
    chart.dispatchEvent(new MouseEvent("mouseup", {clientX: r0.right - 1, clientY: r0.top + 50}));
    res.dragBytes = tree.v;
    res.dragGrowth = tree.d;
    res.dragBanner = banner.textContent;
    var pre0 = document.createElement("pre");
    pre0.id = "selftest";
    pre0.textContent = JSON.stringify(res);
    document.body.appendChild(pre0);
  } else if (location.hash.indexOf("#selftest=") === 0) {
    var want = decodeURIComponent(location.hash.slice(10)), out = {firstDrawMs: Math.round(firstDrawMs), nodes: N.p.length};
    out.rootBytes = tree.v;
    out.rootGrowth = tree.d;
    out.threads = tree.kids.filter(function (k) { return k.frame >= 0 && F.k[k.frame] === 2; })
      .map(function (k) { return {name: F.n[k.frame], bytes: k.v}; });
    if (threadSel && !threadSel.hidden && threadSel.options.length > 1) {
      threadSel.value = threadSel.options[1].value;
      threadSel.dispatchEvent(new Event("change"));
      out.filtered = state.zoom ? {name: F.n[state.zoom.frame], bytes: state.zoom.v} : null;
      threadSel.value = "";
      threadSel.dispatchEvent(new Event("change"));
    }
    out.dataTotal = D.total;
    var target = null;
    (function find(x) { if (!target && x.frame >= 0 && F.n[x.frame] === want) target = x; x.kids.forEach(find); })(tree);
    if (target) {
      var r = null;
      draw();
      for (var i = 0; i < rects.length; i++) if (rects[i].node === target) r = rects[i];
      var box = canvas.getBoundingClientRect();
      if (r) canvas.dispatchEvent(new MouseEvent("click", {clientX: box.left + r.x + 1, clientY: box.top + r.y + 2}));
      out.zoomedTo = state.zoom ? F.n[state.zoom.frame] : null;
      out.crumbs = crumbs.textContent;
      out.zoomBytes = state.zoom ? state.zoom.v : 0;
    }
    state.zoom = 0;
    searchBox.value = want;
    searchBox.dispatchEvent(new Event("input"));
    out.searchBytes = Number(found.dataset.bytes);
    out.searchText = found.textContent;
    var pre = document.createElement("pre");
    pre.id = "selftest";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
})();
