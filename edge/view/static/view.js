// The live view: one EventSource, two kinds of events (frame, stats). No libraries, no build step.
(function () {
  "use strict";
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const q = (extra) => { const p = new URLSearchParams(extra || {}); if (token) p.set("token", token); const s = p.toString(); return s ? "?" + s : ""; };
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  let firstGrabbed = null;

  function setText(id, text) { $(id).textContent = text; }
  function fmt(v, digits) { return v === null || v === undefined ? "-" : Number(v).toFixed(digits); }

  function onFrame(m) {
    $("frame").src = "frame.jpg" + q({ seq: m.seq });
    const v = $("verdict");
    v.textContent = m.verdict; v.className = "badge " + m.verdict;
    setText("frame-id", "frame " + m.frame_id);
    setText("frame-time", m.time || "");
    // the threshold sits in the middle of the bar; probabilities (scores in 0..1, which crowd near
    // 1) are placed on a logit scale so 0.9990 and 0.9999 do not look the same
    const thr = m.threshold;
    const prob = thr > 0 && thr < 1 && m.score >= 0 && m.score <= 1;
    const f = prob ? (x) => { const e = Math.min(Math.max(x, 1e-6), 1 - 1e-6); return Math.log(e / (1 - e)); } : (x) => x;
    let pos = 0;
    if (thr) { const span = Math.max(Math.abs(f(thr)), prob ? 4 : 1e-9); pos = 50 + 50 * (f(m.score) - f(thr)) / span; }
    else { pos = 100 * Math.min(1, m.score); }
    const fill = $("score-fill");
    fill.style.width = Math.max(0, Math.min(100, pos)) + "%";
    fill.style.background = m.verdict === "NG" ? "#ef4444" : "#3b82f6";
    const mark = $("threshold-mark");
    if (thr) { mark.style.display = "block"; mark.style.left = "50%"; } else { mark.style.display = "none"; }
    setText("score-text", "score " + fmt(m.score, 4) + (thr ? "  threshold " + fmt(thr, 4) : "  (rule: a region of at least " + m.min_area + " px)"));
    const n = Number(body.dataset.frames) + 1;
    body.dataset.frames = n;
    if (!body.dataset.firstSeq) body.dataset.firstSeq = m.seq;
    body.dataset.lastSeq = m.seq;
    body.dataset.lastVerdict = m.verdict;
    if (m.verdict === "NG") { body.dataset.ngSeen = "1"; body.dataset.ngSrc = $("frame").src; }
  }

  function row(cells) { const tr = document.createElement("tr"); cells.forEach((c) => { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }); return tr; }

  function onStats(s) {
    setText("station", s.station); setText("camera", s.camera);
    setText("fps", fmt(s.fps, 1) + " fps");
    const c = s.counts;
    const dropped = Object.values(c.dropped).reduce((a, b) => a + b, 0);
    setText("n-ok", c.OK); setText("n-ng", c.NG); setText("n-dropped", dropped);
    setText("ng-share", c.ng_share === null ? "-" : fmt(100 * c.ng_share, 1) + " %" + (c.ng_alarm ? " (alarm)" : ""));
    $("ng-share").className = c.ng_alarm ? "badge off" : "";
    setText("n-gaps", c.camera_skipped); setText("n-grabbed", c.grabbed);
    if (firstGrabbed === null) { firstGrabbed = c.grabbed; body.dataset.firstGrabbed = c.grabbed; }
    body.dataset.lastGrabbed = c.grabbed;
    setText("drop-reasons", Object.entries(c.dropped).map(([k, v]) => k + " " + v).join(", "));
    const outs = $("outputs").tBodies[0]; outs.replaceChildren();
    s.outputs.forEach((o) => {
      const link = (o.connected ? "connected" : "down") + (o.errors ? ", " + o.errors + " errors" : "");
      const tr = row([o.name, link, o.queued + (o.spool ? " (spool " + o.spool + ")" : ""),
                      fmt(o.lag_p50_ms, 1) + " / " + fmt(o.lag_p99_ms, 1)]);
      tr.children[1].className = "badge " + (o.connected && !o.errors ? "on" : "off");
      if (o.errors) tr.children[1].title = o.last_error;
      outs.appendChild(tr);
    });
    if (!s.outputs.length) outs.appendChild(row(["JSON lines only", "", "", ""]));
    const lat = $("latency").tBodies[0]; lat.replaceChildren();
    Object.entries(s.latency_ms).forEach(([k, v]) => lat.appendChild(row([k, fmt(v.p50, 2), fmt(v.p99, 2)])));
    const h = s.histogram, svg = $("histogram");
    svg.replaceChildren();
    const max = Math.max(1, ...h.counts);
    h.counts.forEach((n, i) => {
      const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      const w = 200 / h.counts.length;
      r.setAttribute("x", i * w); r.setAttribute("width", Math.max(0.5, w - 1));
      r.setAttribute("y", 60 - 60 * n / max); r.setAttribute("height", 60 * n / max);
      svg.appendChild(r);
    });
    setText("histogram-range", h.edges_ms.length ? "total " + fmt(h.edges_ms[0], 1) + " - " + fmt(h.edges_ms[h.edges_ms.length - 1], 1) + " ms" : "");
    const ng = $("ng-parts"); ng.replaceChildren();
    s.ng_parts.forEach((p) => {
      const f = document.createElement("figure");
      const img = document.createElement("img"); img.src = "ng/" + p.ng_seq + ".jpg" + q(); img.alt = "NG part " + p.frame_id;
      const cap = document.createElement("figcaption"); cap.textContent = "frame " + p.frame_id + "  score " + fmt(p.score, 4) + "  " + (p.time || "");
      if (p.archived) { cap.title = "archived: " + p.archived; cap.textContent += "  (archived)"; }
      f.appendChild(img); f.appendChild(cap); ng.appendChild(f);
    });
    body.dataset.ngParts = s.ng_parts.length;
    if (s.ng_parts.length) body.dataset.ngThumb = "ng/" + s.ng_parts[0].ng_seq + ".jpg";
  }

  const link = $("link");
  const es = new EventSource("events" + q());
  es.onopen = () => { link.textContent = "live"; link.className = "badge on"; };
  es.onerror = () => { link.textContent = "reconnecting"; link.className = "badge off"; };
  es.addEventListener("frame", (e) => onFrame(JSON.parse(e.data)));
  es.addEventListener("stats", (e) => onStats(JSON.parse(e.data)));
})();
