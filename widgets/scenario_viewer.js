// ScenarioViewer front end: a bird's-eye view drawn on <canvas> from arrays received once.
//
// Model: `_meta` (JSON: sizes, labels, colours, the layout of `_payload`), `_payload` (one binary buffer of
// little-endian float32 / int32 arrays, see pack_frames in scenario_viewer.py), `t` (the step shown),
// `playing`, `fps` and `error`. A change of `t` redraws from the decoded arrays: the map and the static paths
// come from a cached bitmap per panel (re-rendered only when the view pans, zooms or resizes), then the
// traffic lights, the plan, the top-k candidates and the agent boxes of step t are drawn on top.
//
// DOM contract: root `.wel-scenario-viewer` with `data-t` (step drawn last) and `data-draw-ms` (duration of
// the last redraw of all panels and the timeline); `input[type=range].wel-scrubber`; `.wel-play`; one
// `canvas.wel-bev` per panel.

const LOGGED = "#495057";
const COLLISION = "#e03131";
const OFFROAD = "#f08c00";
const BOX = 5; // x, y, yaw, length, width
const EV = 4; // simulated, collision, off-road, agent in contact

// ------------------------------------------------------------------------------------------------- data

function decode(meta, payload) {
  // typed views (no copies) of the arrays in `payload`; null while the payload does not match the layout
  const u8 = bytesOf(payload);
  const out = {};
  for (const [name, spec] of Object.entries(meta.arrays || {})) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    if (spec.offset + 4 * n > u8.byteLength) return null;
    out[name] = new (spec.dtype === "float32" ? Float32Array : Int32Array)(u8.buffer, u8.byteOffset + spec.offset, n);
  }
  return out;
}

function polylinePath(xy, off, i, path) {
  const s = off[i], e = off[i + 1];
  if (e - s < 2) return path;
  path.moveTo(xy[2 * s], xy[2 * s + 1]);
  for (let j = s + 1; j < e; j++) path.lineTo(xy[2 * j], xy[2 * j + 1]);
  return path;
}

function pointsPath(xy, start, count, stride = 2) {
  // a polyline through `count` points (x, y first of every `stride` values) from point `start`; NaN = gap
  const path = new Path2D();
  let pen = false;
  for (let j = 0; j < count; j++) {
    const x = xy[(start + j) * stride], y = xy[(start + j) * stride + 1];
    if (!Number.isFinite(x) || !Number.isFinite(y)) { pen = false; continue; }
    if (pen) path.lineTo(x, y); else path.moveTo(x, y);
    pen = true;
  }
  return path;
}

function prepare(meta, a) {
  const kinds = meta.map_kinds;
  const mapPaths = kinds.map(() => new Path2D());
  const kind = a.map_kind, off = a.map_offsets, xy = a.map_xy;
  for (let i = 0; i < kind.length; i++) polylinePath(xy, off, i, mapPaths[kind[i]]);
  const lights = Array.from(a.light_polyline, (p) => polylinePath(xy, off, p, new Path2D()));
  const T = meta.num_steps;
  const panels = meta.panels.map((info, i) => {
    const g = (k) => a[`p${i}/${k}`];
    const boxes = g("boxes"), valid = g("valid"), events = g("events");
    const sim = new Float32Array(2 * T).fill(NaN);
    for (let t = 0; t < T; t++) {
      if (events[t * EV] && valid[t * meta.num_agents]) {
        sim[2 * t] = boxes[t * meta.num_agents * BOX];
        sim[2 * t + 1] = boxes[t * meta.num_agents * BOX + 1];
      }
    }
    return { info, boxes, valid, events, plans: g("plans"), planSteps: g("plan_steps"),
      candXY: g("cand_xy"), candSteps: g("cand_steps"), candIndex: g("cand_index"), candValues: g("cand_values"),
      simPath: pointsPath(sim, 0, T) };
  });
  return { mapPaths, lights, panels, loggedPath: pointsPath(a.logged_ego, 0, T, BOX) };
}

function lastAtOrBefore(steps, t) {
  let lo = 0, hi = steps ? steps.length : 0;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (steps[mid] <= t) lo = mid + 1; else hi = mid; }
  return lo - 1;
}

const esc = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function segmentDistance(px, py, ax, ay, bx, by) {
  const vx = bx - ax, vy = by - ay, l2 = vx * vx + vy * vy;
  const u = l2 > 0 ? Math.max(0, Math.min(1, ((px - ax) * vx + (py - ay) * vy) / l2)) : 0;
  return Math.hypot(px - ax - u * vx, py - ay - u * vy);
}

function el(tag, cls, parent, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

// ------------------------------------------------------------------------------------------------ viewer
function createViewer(model, root) {
  // view: world centre (m) and scale (CSS px per m); moved: the user panned or zoomed (no refit on resize)
  const st = { t: 0, view: null, moved: false, hover: null, drag: null, raf: 0, playRaf: 0, lastTick: 0,
    size: [480, 420] };
  let meta, a, d, panels = [];
  const dpr = () => window.devicePixelRatio || 1;

  const head = el("div", "wel-head", root);
  const title = el("span", "wel-title", head);
  el("span", "wel-legend", head, "dashed: logged ego · solid: simulated · dotted: plan · thin: top-k candidates");
  const grid = el("div", "wel-panels", root);
  const controls = el("div", "wel-controls", root);
  const play = el("button", "wel-play", controls, "▶");
  play.type = "button";
  play.title = "play / pause";
  const scrub = el("input", "wel-scrubber", controls);
  scrub.type = "range";
  scrub.step = "1";
  const readout = el("span", "wel-time", controls);
  const fit = el("button", "wel-fit", controls, "fit");
  fit.type = "button";
  fit.title = "reset the view (or double-click a panel)";
  const timeline = el("canvas", "wel-timeline", root);
  const errorBox = el("div", "wel-error", root);
  const tooltip = el("div", "wel-tooltip", root);

  function build() {
    const m = model.get("_meta") || {};
    const arrays = m.arrays ? decode(m, model.get("_payload")) : null;
    if (!arrays) return; // a layout without its payload (yet): keep what is shown until change:_payload
    meta = m;
    a = arrays;
    d = prepare(meta, a);
    grid.textContent = "";
    panels = d.panels.map((p) => {
      const box = el("div", "wel-panel", grid);
      const label = el("div", "wel-panel-label", box);
      el("span", "wel-swatch", label).style.background = p.info.color;
      el("span", "", label, p.info.label);
      const status = el("span", "wel-panel-status", label);
      const canvas = el("canvas", "wel-bev", box);
      return { ...p, box, status, canvas, ctx: canvas.getContext("2d"), cache: document.createElement("canvas"),
        cacheKey: "" };
    });
    title.textContent = `${meta.scenario_id} · ${meta.num_agents} agents · ${meta.num_steps} steps`;
    scrub.min = "0";
    scrub.max = String(meta.num_steps - 1);
    st.view = null;
    st.moved = false;
    resize(true);
    setT(model.get("t"), false);
  }

  // -- view ---------------------------------------------------------------------------------------------
  function fitView() {
    const [x0, y0, x1, y1] = meta.bounds;
    const [w, h] = st.size;
    st.view = { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2,
      scale: Math.max(1e-3, Math.min(w / Math.max(x1 - x0, 1), h / Math.max(y1 - y0, 1))) };
  }

  function applyView(ctx) {
    const { cx, cy, scale } = st.view, r = dpr(), [w, h] = st.size;
    ctx.setTransform(scale * r, 0, 0, -scale * r, (w / 2 - cx * scale) * r, (h / 2 + cy * scale) * r);
  }

  function toWorld(canvas, ev) {
    const rect = canvas.getBoundingClientRect(), { cx, cy, scale } = st.view, [w, h] = st.size;
    return [cx + (ev.clientX - rect.left - w / 2) / scale, cy - (ev.clientY - rect.top - h / 2) / scale];
  }

  function resize(force) {
    if (!meta || !meta.arrays) return;
    const n = panels.length, gap = 6;
    const width = Math.max(200, Math.floor(((grid.clientWidth || 480 * n) - gap * (n - 1)) / n));
    const height = meta.height || 420;
    if (!force && width === st.size[0] && height === st.size[1] && panels[0].canvas.width) return;
    st.size = [width, height];
    for (const p of panels) {
      p.canvas.style.width = `${width}px`;
      p.canvas.style.height = `${height}px`;
      p.canvas.width = p.cache.width = Math.round(width * dpr());
      p.canvas.height = p.cache.height = Math.round(height * dpr());
      p.cacheKey = "";
    }
    timeline.style.width = "100%";
    timeline.width = Math.round((root.clientWidth || width * n) * dpr());
    timeline.height = Math.round((8 * panels.length + 8) * dpr());
    timeline.style.height = `${8 * panels.length + 8}px`;
    if (!st.view || !st.moved) fitView();
    draw();
  }

  // -- drawing ------------------------------------------------------------------------------------------
  function drawStatic(p) {
    const ctx = p.cache.getContext("2d"), px = 1 / st.view.scale;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = BG;
    ctx.fillRect(0, 0, p.cache.width, p.cache.height);
    applyView(ctx);
    ctx.lineJoin = "round";
    meta.map_kinds.forEach((kind, i) => {
      const s = MAP_STYLE[kind] || {};
      if (s.fill) { ctx.fillStyle = s.fill; ctx.fill(d.mapPaths[i], "nonzero"); }
      if (s.stroke) {
        ctx.strokeStyle = s.stroke;
        ctx.lineWidth = s.width * px;
        ctx.setLineDash((s.dash || []).map((v) => v * px));
        ctx.stroke(d.mapPaths[i]);
      }
    });
    ctx.setLineDash([6 * px, 4 * px]);
    ctx.strokeStyle = LOGGED;
    ctx.lineWidth = 1.5 * px;
    ctx.stroke(d.loggedPath);
    ctx.setLineDash([]);
    ctx.strokeStyle = p.info.color;
    ctx.lineWidth = 2 * px;
    ctx.stroke(p.simPath);
    const N = meta.num_agents;
    for (let t = 0; t < meta.num_steps; t++) { // event markers at the ego position
      const hit = p.events[t * EV + 1], off = p.events[t * EV + 2];
      if ((!hit && !off) || !p.valid[t * N]) continue;
      const x = p.boxes[t * N * BOX], y = p.boxes[t * N * BOX + 1], r = 4 * px;
      ctx.strokeStyle = hit ? COLLISION : OFFROAD;
      ctx.lineWidth = 1.5 * px;
      ctx.beginPath();
      if (hit) { // a cross
        ctx.moveTo(x - r, y - r); ctx.lineTo(x + r, y + r); ctx.moveTo(x - r, y + r); ctx.lineTo(x + r, y - r);
      } else { // a triangle
        ctx.moveTo(x - r, y - r); ctx.lineTo(x + r, y - r); ctx.lineTo(x, y + r); ctx.closePath();
      }
      ctx.stroke();
    }
  }

  function boxPath(path, b, o) { // the oriented box b[o .. o + 4] (x, y, yaw, length, width) as a closed ring
    const x = b[o], y = b[o + 1], c = Math.cos(b[o + 2]), s = Math.sin(b[o + 2]), hl = b[o + 3] / 2, hw = b[o + 4] / 2;
    path.moveTo(x + c * hl - s * hw, y + s * hl + c * hw);
    path.lineTo(x - c * hl - s * hw, y - s * hl + c * hw);
    path.lineTo(x - c * hl + s * hw, y - s * hl - c * hw);
    path.lineTo(x + c * hl + s * hw, y + s * hl - c * hw);
    path.closePath();
  }

  function drawPanel(p, t) {
    const ctx = p.ctx, px = 1 / st.view.scale, N = meta.num_agents;
    const key = `${st.view.cx},${st.view.cy},${st.view.scale},${p.cache.width},${p.cache.height}`;
    if (p.cacheKey !== key) { drawStatic(p); p.cacheKey = key; }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(p.cache, 0, 0);
    applyView(ctx);
    ctx.lineJoin = "round";
    ctx.setLineDash([]);
    const L = a.light_status.length / meta.num_steps; // traffic lights at t
    if (L >= 1) {
      ctx.lineWidth = 3 * px;
      for (let j = 0; j < d.lights.length; j++) {
        ctx.strokeStyle = meta.light_colors[a.light_status[t * L + a.light_column[j]]] || meta.light_colors[3];
        ctx.stroke(d.lights[j]);
      }
    }
    const live = p.info.is_log || p.events[t * EV]; // a rollout's plans and candidates exist during its episode
    const c = lastAtOrBefore(p.candSteps, t); // top-k candidates of the planning step active at t
    if (c >= 0 && p.info.k && live) {
      const k = p.info.k;
      ctx.strokeStyle = p.info.color;
      for (let r = k - 1; r >= 0; r--) {
        const hot = st.hover && st.hover.kind === "cand" && st.hover.panel === p && st.hover.r === r;
        ctx.globalAlpha = hot ? 1 : 0.45;
        ctx.lineWidth = (hot ? 2.5 : 0.8) * px;
        ctx.stroke(pointsPath(p.candXY, (c * k + r) * 41, 41));
      }
      ctx.globalAlpha = 1;
    }
    const q = lastAtOrBefore(p.planSteps, t); // the plan executed at t
    if (q >= 0 && live) {
      ctx.strokeStyle = p.info.color;
      ctx.lineWidth = 2 * px;
      ctx.setLineDash([2 * px, 3 * px]);
      ctx.stroke(pointsPath(p.plans, q * 41, 41));
      ctx.setLineDash([]);
    }
    const byType = meta.type_colors.map(() => null), heading = new Path2D(), base = t * N;
    for (let n = 1; n < N; n++) { // agent boxes grouped by type: one fill per colour
      if (!p.valid[base + n]) continue;
      const ty = a.agent_type[n], o = (base + n) * BOX;
      boxPath(byType[ty] || (byType[ty] = new Path2D()), p.boxes, o);
      const cth = Math.cos(p.boxes[o + 2]), sth = Math.sin(p.boxes[o + 2]), hl = p.boxes[o + 3] / 2;
      heading.moveTo(p.boxes[o], p.boxes[o + 1]);
      heading.lineTo(p.boxes[o] + cth * hl, p.boxes[o + 1] + sth * hl);
    }
    ctx.strokeStyle = "#343a40";
    ctx.lineWidth = 1 * px;
    byType.forEach((path, ty) => {
      if (path) { ctx.fillStyle = meta.type_colors[ty]; ctx.fill(path); ctx.stroke(path); }
    });
    ctx.stroke(heading);
    if (!p.info.is_log && Number.isFinite(a.logged_ego[t * BOX])) { // outline of the logged ego
      const ghost = new Path2D();
      boxPath(ghost, a.logged_ego, t * BOX);
      ctx.strokeStyle = LOGGED;
      ctx.lineWidth = 1.5 * px;
      ctx.setLineDash([4 * px, 3 * px]);
      ctx.stroke(ghost);
      ctx.setLineDash([]);
    }
    const hit = p.events[t * EV + 1], off = p.events[t * EV + 2], who = p.events[t * EV + 3];
    if (p.valid[base]) {
      const ego = new Path2D();
      boxPath(ego, p.boxes, base * BOX);
      ctx.fillStyle = p.info.color;
      ctx.fill(ego);
      ctx.strokeStyle = hit ? COLLISION : off ? OFFROAD : "#212529";
      ctx.lineWidth = (hit || off ? 3 : 2) * px;
      ctx.stroke(ego);
    }
    const secs = ((t - meta.t0) * meta.dt).toFixed(1);
    let text = `${secs >= 0 ? "+" : ""}${secs} s`;
    if (!p.info.is_log && !p.events[t * EV]) text += t < meta.t0 ? " · history (log)" : " · after the episode";
    if (hit) text += ` · collision${who >= 0 ? ` with ${meta.track_ids[who]}` : ""}`;
    if (off) text += " · off-road";
    p.status.textContent = text;
    p.status.classList.toggle("wel-alert", Boolean(hit || off));
  }

  function drawTimeline(t) {
    const ctx = timeline.getContext("2d"), r = dpr(), T = meta.num_steps;
    const w = timeline.width / r, sx = w / Math.max(T, 1);
    ctx.setTransform(r, 0, 0, r, 0, 0);
    ctx.clearRect(0, 0, w, timeline.height / r);
    panels.forEach((p, i) => {
      const y = 4 + 8 * i;
      for (let s = 0; s < T; s++) {
        const ev = p.events, hit = ev[s * EV + 1], off = ev[s * EV + 2];
        ctx.fillStyle = hit ? COLLISION : off ? OFFROAD : ev[s * EV] ? "#dee2e6" : "#f1f3f5";
        ctx.fillRect(s * sx, y, Math.max(sx, 1), 6);
      }
    });
    ctx.fillStyle = LOGGED;
    ctx.fillRect(meta.t0 * sx, 0, 1, timeline.height / r);
    ctx.fillStyle = "#1c7ed6";
    ctx.fillRect((t + 0.5) * sx - 1, 0, 2, timeline.height / r);
  }

  function draw() {
    if (!meta || !meta.arrays || !st.view) return;
    const t0 = performance.now(), t = st.t;
    for (const p of panels) drawPanel(p, t);
    drawTimeline(t);
    root.dataset.t = String(t);
    root.dataset.drawMs = (performance.now() - t0).toFixed(2);
  }

  function requestDraw() {
    if (!st.raf) st.raf = requestAnimationFrame(() => { st.raf = 0; draw(); });
  }

  function setT(value, save) {
    if (!meta || !meta.arrays) return;
    const t = Math.max(0, Math.min(meta.num_steps - 1, Math.round(Number(value) || 0)));
    st.t = t;
    scrub.value = String(t);
    readout.textContent = `step ${t} / ${meta.num_steps - 1} · ${((t - meta.t0) * meta.dt).toFixed(1)} s`;
    draw();
    if (save && model.get("t") !== t) { model.set("t", t); model.save_changes(); }
  }

  // -- hover: candidates (distance to their segments) then agents (point in box) --------------------------
  function hitTest(p, wx, wy) {
    const tol = 6 / st.view.scale, N = meta.num_agents, t = st.t;
    const c = lastAtOrBefore(p.candSteps, t);
    if (c >= 0 && p.info.k && (p.info.is_log || p.events[t * EV])) {
      let best = null, bestD = tol;
      for (let r = 0; r < p.info.k; r++) {
        const o = (c * p.info.k + r) * 41 * 2, xy = p.candXY;
        for (let j = o; j < o + 80; j += 2) {
          const dd = segmentDistance(wx, wy, xy[j], xy[j + 1], xy[j + 2], xy[j + 3]);
          if (dd < bestD) { bestD = dd; best = { kind: "cand", panel: p, c, r }; }
        }
      }
      if (best) return best;
    }
    for (let n = N - 1; n >= 0; n--) {
      if (!p.valid[t * N + n]) continue;
      const o = (t * N + n) * BOX, b = p.boxes, dx = wx - b[o], dy = wy - b[o + 1];
      const cth = Math.cos(b[o + 2]), sth = Math.sin(b[o + 2]);
      if (Math.abs(cth * dx + sth * dy) <= b[o + 3] / 2 && Math.abs(-sth * dx + cth * dy) <= b[o + 4] / 2) {
        return { kind: "agent", panel: p, n };
      }
    }
    return null;
  }

  function tooltipHtml(h) {
    const p = h.panel;
    if (h.kind === "agent") {
      const ty = meta.type_names[a.agent_type[h.n]] || "?";
      return `<b>${esc(meta.track_ids[h.n])}</b> · ${h.n === 0 ? "ego" : ty}<br>step ${st.t} · ${esc(p.info.label)}`;
    }
    const k = p.info.k, v = p.candValues, o = (h.c * k + h.r) * 7;
    const subs = meta.subscore_names.map((s, i) => `<td>${s}</td><td>${v[o + 2 + i].toFixed(2)}</td>`);
    return `<b>#${h.r + 1}</b> vocab ${p.candIndex[h.c * k + h.r]} · step ${p.candSteps[h.c]}<br>`
      + `score ${v[o].toFixed(2)} · π ${v[o + 1].toFixed(3)}<table><tr>${subs.join("</tr><tr>")}</tr></table>`;
  }

  function onMove(p, ev) {
    if (st.drag) {
      st.moved = true;
      st.view.cx -= (ev.clientX - st.drag[0]) / st.view.scale;
      st.view.cy += (ev.clientY - st.drag[1]) / st.view.scale;
      st.drag = [ev.clientX, ev.clientY];
      requestDraw();
      return;
    }
    const [wx, wy] = toWorld(p.canvas, ev);
    const h = hitTest(p, wx, wy);
    const same = (h && st.hover && h.kind === st.hover.kind && h.panel === st.hover.panel && h.r === st.hover.r
      && h.n === st.hover.n);
    if (!h) tooltip.style.display = "none";
    else {
      const rr = root.getBoundingClientRect();
      tooltip.innerHTML = tooltipHtml(h);
      tooltip.style.display = "block";
      tooltip.style.left = `${ev.clientX - rr.left + 12}px`;
      tooltip.style.top = `${ev.clientY - rr.top + 12}px`;
    }
    if (!same && (h || st.hover)) { st.hover = h; requestDraw(); }
  }

  function onWheel(p, ev) {
    ev.preventDefault();
    st.moved = true;
    const [wx, wy] = toWorld(p.canvas, ev), f = Math.exp(-ev.deltaY * 0.0015), v = st.view;
    v.scale = Math.max(0.05, Math.min(200, v.scale * f));
    const [nx, ny] = toWorld(p.canvas, ev); // keep the world point under the cursor fixed
    v.cx += wx - nx;
    v.cy += wy - ny;
    requestDraw();
  }

  // -- play -------------------------------------------------------------------------------------------------
  function tick(now) {
    st.playRaf = 0;
    if (!model.get("playing")) return;
    const period = 1000 / Math.max(0.1, model.get("fps") || 10);
    if (now - st.lastTick >= period) {
      st.lastTick = now;
      if (st.t >= meta.num_steps - 1) { model.set("playing", false); model.save_changes(); syncPlay(); return; }
      setT(st.t + 1, true);
    }
    st.playRaf = requestAnimationFrame(tick);
  }

  function syncPlay() {
    if (!meta) return;
    const on = Boolean(model.get("playing"));
    play.textContent = on ? "⏸" : "▶";
    play.classList.toggle("wel-on", on);
    if (on && !st.playRaf) {
      if (st.t >= meta.num_steps - 1) setT(0, true);
      st.lastTick = performance.now();
      st.playRaf = requestAnimationFrame(tick);
    }
  }

  function syncError() {
    const msg = model.get("error") || "";
    errorBox.textContent = "";
    errorBox.style.display = msg ? "block" : "none";
    if (!msg) return;
    const close = el("button", "wel-error-close", errorBox, "×");
    close.type = "button";
    close.onclick = () => { model.set("error", ""); model.save_changes(); };
    el("pre", "", errorBox, msg);
  }

  // -- events -----------------------------------------------------------------------------------------------
  scrub.addEventListener("input", () => setT(scrub.value, true));
  // Step keys are handled here and kept from the host page: notebook front ends bind keys of their own.
  const STEP_KEYS = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1, PageUp: 10, PageDown: -10 };
  scrub.addEventListener("keydown", (ev) => {
    ev.stopPropagation();
    const last = meta ? meta.num_steps - 1 : 0;
    const jump = { Home: 0, End: last }[ev.key];
    const next = ev.key in STEP_KEYS ? st.t + STEP_KEYS[ev.key] : jump !== undefined ? jump : null;
    if (next === null) return;
    ev.preventDefault();
    setT(next, true);
  });
  play.addEventListener("click", () => {
    model.set("playing", !model.get("playing"));
    model.save_changes();
    syncPlay();
  });
  const refit = () => { st.moved = false; fitView(); draw(); };
  fit.addEventListener("click", refit);
  const panelOf = (ev) => panels.find((q) => q.canvas === ev.target);
  grid.addEventListener("mousedown", (ev) => { if (panelOf(ev)) st.drag = [ev.clientX, ev.clientY]; });
  const stopDrag = () => { st.drag = null; };
  window.addEventListener("mouseup", stopDrag);
  grid.addEventListener("mouseleave", () => {
    tooltip.style.display = "none";
    if (st.hover) { st.hover = null; requestDraw(); }
  });
  grid.addEventListener("mousemove", (ev) => { const p = panelOf(ev); if (p) onMove(p, ev); });
  grid.addEventListener("wheel", (ev) => { const p = panelOf(ev); if (p) onWheel(p, ev); }, { passive: false });
  grid.addEventListener("dblclick", refit);
  const seek = (ev) => {
    if (!meta) return;
    const rect = timeline.getBoundingClientRect();
    setT(Math.floor(((ev.clientX - rect.left) / Math.max(rect.width, 1)) * meta.num_steps), true);
  };
  timeline.addEventListener("mousedown", seek);
  timeline.addEventListener("mousemove", (ev) => { if (ev.buttons & 1) seek(ev); });

  const onT = () => { if (model.get("t") !== st.t) setT(model.get("t"), false); };
  model.on("change:t", onT);
  model.on("change:playing", syncPlay);
  model.on("change:error", syncError);
  model.on("change:_payload", build);
  model.on("change:_meta", build);
  const observer = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => resize()) : null;
  if (observer) observer.observe(grid);

  build();
  syncError();
  syncPlay();
  return () => {
    model.off("change:t", onT);
    model.off("change:playing", syncPlay);
    model.off("change:error", syncError);
    model.off("change:_payload", build);
    model.off("change:_meta", build);
    window.removeEventListener("mouseup", stopDrag);
    if (observer) observer.disconnect();
    cancelAnimationFrame(st.raf);
    cancelAnimationFrame(st.playRaf);
  };
}

export default {
  render({ model, el: host }) {
    const root = document.createElement("div");
    root.className = "wel-scenario-viewer";
    root.dataset.t = "";
    root.dataset.drawMs = "";
    host.appendChild(root);
    const cleanup = createViewer(model, root);
    return () => { cleanup(); root.remove(); };
  },
};
