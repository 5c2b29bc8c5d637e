// VariantEditor front end: op picker, one control per parameter, readouts, a BEV preview on <canvas>, a gallery
// of sampled alternatives, and accept / reject with a note. Self-contained ES module (no imports).
//
// Model: `ops` (form specs, sent once), `op`, `params`, `seq`, `outcome` (readouts; echoes `seq`),
// `parent_outcome`, `gallery`, `selected`, `note`, `request` ({action, seq}), `latency_ms`, `status`, `error`;
// arrays: `_map_meta` / `_map_payload` (map, once), `_meta` / `_payload` (preview of the current outcome),
// `_gallery_meta` / `_gallery_payload` (thumbnails). Layout of a payload: {name: {dtype, offset, shape}}.
//
// Changes are debounced (DEBOUNCE_MS) and sent one at a time: while Python evaluates one, later moves only
// update the pending values, sent when the answer (outcome.seq) arrives. The slider-to-redraw time of the last
// change is written to the root's `data-roundtrip-ms`; `data-seq` is the last answered change.
//
// DOM contract: root `.wel-variant-editor`; `select.wel-op`; `input[type=range].wel-param[data-param]`;
// `.wel-verdict` (pass / fail text), `.wel-ttc` (min TTC text), `.wel-realism`, `.wel-infeasible`;
// `canvas.wel-bev`; `.wel-thumb` per gallery item; `button.wel-accept`, `button.wel-reject`, `textarea.wel-note`.

const DEBOUNCE_MS = 60;
const EGO = "#1c7ed6";
const EDITED = "#f76707";
const LOGGED = "#495057";
const COLLISION = "#e03131";
const BOX = 5;
const EV = 3;

function decode(meta, payload) {
  const u8 = bytesOf(payload), out = {};
  for (const [name, spec] of Object.entries((meta && meta.arrays) || {})) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    if (spec.offset + 4 * n > u8.byteLength) return null;
    out[name] = new (spec.dtype === "float32" ? Float32Array : Int32Array)(u8.buffer, u8.byteOffset + spec.offset, n);
  }
  return out;
}

function mapPaths(meta, a) {
  const paths = meta.map_kinds.map(() => new Path2D());
  const xy = a.map_xy, off = a.map_offsets, kind = a.map_kind;
  for (let i = 0; i < kind.length; i++) {
    const s = off[i], e = off[i + 1];
    if (e - s < 2) continue;
    const p = paths[kind[i]];
    p.moveTo(xy[2 * s], xy[2 * s + 1]);
    for (let j = s + 1; j < e; j++) p.lineTo(xy[2 * j], xy[2 * j + 1]);
  }
  return paths;
}

function linePath(get, count) { // get(j) -> [x, y] or null (gap)
  const path = new Path2D();
  let pen = false;
  for (let j = 0; j < count; j++) {
    const p = get(j);
    if (!p || !Number.isFinite(p[0]) || !Number.isFinite(p[1])) { pen = false; continue; }
    if (pen) path.lineTo(p[0], p[1]); else path.moveTo(p[0], p[1]);
    pen = true;
  }
  return path;
}

function boxPath(path, b, o) {
  const x = b[o], y = b[o + 1], c = Math.cos(b[o + 2]), s = Math.sin(b[o + 2]), hl = b[o + 3] / 2, hw = b[o + 4] / 2;
  path.moveTo(x + c * hl - s * hw, y + s * hl + c * hw);
  path.lineTo(x - c * hl - s * hw, y - s * hl + c * hw);
  path.lineTo(x - c * hl + s * hw, y - s * hl - c * hw);
  path.lineTo(x + c * hl + s * hw, y + s * hl - c * hw);
  path.closePath();
}

function drawMap(ctx, paths, meta, px, simple) {
  meta.map_kinds.forEach((kind, i) => {
    const s = MAP_STYLE[kind] || {};
    if (simple && kind !== "drivable_area" && kind !== "drivable_hole" && kind !== "lane") return;
    if (s.fill) { ctx.fillStyle = s.fill; ctx.fill(paths[i], "nonzero"); }
    if (s.stroke) {
      ctx.strokeStyle = s.stroke;
      ctx.lineWidth = s.width * px;
      ctx.setLineDash((s.dash || []).map((v) => v * px));
      ctx.stroke(paths[i]);
    }
  });
  ctx.setLineDash([]);
}

const fmt = (x, d = 1) => (x === null || x === undefined ? "—" : Number(x).toFixed(d));
const ttcText = (x) => (x === null || x === undefined ? "min TTC > 5 s" : `min TTC ${fmt(x)} s`);

function render({ model, el: host }) {
  const root = h("div", { class: "wel-variant-editor", "data-lm-suppress-shortcuts": "true" });
  root.dataset.seq = "";
  root.dataset.roundtripMs = "";
  host.append(root);
  const dpr = () => window.devicePixelRatio || 1;
  const st = { values: {}, sentSeq: model.get("seq") || 0, pending: false, timer: 0, sentAt: {}, firstInput: 0,
    t: 0, view: null, moved: false, drag: null, size: [520, 380], raf: 0 };
  let mapMeta = null, mapArr = null, mapP = null, meta = null, arr = null, gMeta = null, gArr = null;

  // -- layout ---------------------------------------------------------------------------------------------
  const title = h("div", { class: "wel-title" });
  const parentLine = h("div", { class: "wel-parent" });
  const opSelect = h("select", { class: "wel-op" });
  const opDoc = h("div", { class: "wel-op-doc" });
  const form = h("div", { class: "wel-form" });
  const verdict = h("div", { class: "wel-verdict" });
  const ttc = h("div", { class: "wel-ttc" });
  const realism = h("div", { class: "wel-realism" });
  const infeasible = h("div", { class: "wel-infeasible", role: "alert" });
  const timing = h("div", { class: "wel-timing" });
  const note = h("textarea", { class: "wel-note", rows: "2", placeholder: "note stored with the decision" });
  const accept = h("button", { class: "wel-accept", type: "button", text: "Accept" });
  const reject = h("button", { class: "wel-reject", type: "button", text: "Reject" });
  const status = h("div", { class: "wel-status" });
  const canvas = h("canvas", { class: "wel-bev" });
  const scrub = h("input", { class: "wel-scrubber", type: "range", min: "0", max: "0", step: "1" });
  const tLabel = h("span", { class: "wel-time" });
  const galleryBox = h("div", { class: "wel-gallery" });
  const errorBox = h("div", { class: "wel-error", role: "alert" });
  const side = h("div", { class: "wel-side" }, [
    h("label", { class: "wel-field" }, [h("span", { class: "wel-field-label", text: "edit" }), opSelect]), opDoc, form,
    h("div", { class: "wel-readouts" }, [verdict, ttc, realism, infeasible, timing]),
    note, h("div", { class: "wel-buttons" }, [accept, reject]), status]);
  const main = h("div", { class: "wel-main" }, [
    canvas, h("div", { class: "wel-controls" }, [scrub, tLabel]),
    h("div", { class: "wel-legend", text: "blue: ego in closed loop · dashed: logged ego · orange: edited agents · ✕ collision" })]);
  root.append(h("div", { class: "wel-head" }, [title, parentLine]), h("div", { class: "wel-body" }, [side, main]),
    galleryBox, errorBox);

  // -- form -----------------------------------------------------------------------------------------------
  const spec = () => (model.get("ops") || []).find((o) => o.name === model.get("op"));

  function buildOps() {
    opSelect.replaceChildren(...(model.get("ops") || []).map((o) => h("option", { value: o.name, text: o.label })));
    opSelect.value = model.get("op");
  }

  function rangeInput(p, i, value) {
    const input = h("input", { class: "wel-param", type: "range", min: String(p.min[i]), max: String(p.max[i]),
      step: String(p.step[i]), "data-param": p.name, "data-comp": p.kind === "vector" ? String(i) : null });
    input.value = String(value);
    return input;
  }

  function buildForm() {
    const s = spec();
    opDoc.textContent = s ? s.doc : "";
    form.replaceChildren();
    if (!s) return;
    st.values = JSON.parse(JSON.stringify(model.get("params") || {}));
    for (const p of s.params) {
      const row = h("div", { class: "wel-row", "data-param": p.name, title: p.doc });
      const label = h("span", { class: "wel-param-label", text: p.name + (p.unit ? ` (${p.unit})` : "") });
      row.append(label);
      let value = st.values[p.name];
      if (p.kind === "agent" || p.kind === "choice") {
        const sel = h("select", { class: "wel-param-select", "data-param": p.name },
          p.choices.map((c) => h("option", { value: c, text: c })));
        if (value && !p.choices.includes(value)) sel.append(h("option", { value, text: value }));
        sel.value = value;
        sel.addEventListener("change", () => { st.values[p.name] = sel.value; schedule(0); });
        row.append(sel);
      } else {
        const comps = p.kind === "vector" ? p.components : [""];
        const special = value === null || value === "auto";
        const fallback = (i) => (Array.isArray(p.default) ? p.default[i] : (p.min[i] + p.max[i]) / 2);
        const current = (i) => (special ? fallback(i) : p.kind === "vector" ? value[i] : value);
        const inputs = comps.map((c, i) => {
          const input = rangeInput(p, i, current(i));
          const shown = h("span", { class: "wel-param-value", text: fmt(input.value, 2) });
          input.disabled = special;
          input.addEventListener("input", () => {
            shown.textContent = fmt(input.value, 2);
            if (p.kind === "vector") {
              const v = Array.isArray(st.values[p.name]) ? st.values[p.name].slice() : comps.map((_, j) => current(j));
              v[i] = Number(input.value);
              st.values[p.name] = v;
            } else st.values[p.name] = Number(input.value);
            schedule(DEBOUNCE_MS);
          });
          input.addEventListener("keydown", (ev) => ev.stopPropagation()); // keep arrow keys from the notebook
          row.append(h("span", { class: "wel-comp" }, [c ? h("span", { class: "wel-comp-label", text: c }) : null, input, shown]));
          return input;
        });
        if (p.optional || p.auto) {
          const word = p.auto ? "auto" : "default";
          const box = h("input", { type: "checkbox", class: "wel-special" });
          box.checked = special;
          box.addEventListener("change", () => {
            inputs.forEach((inp) => { inp.disabled = box.checked; });
            if (box.checked) st.values[p.name] = p.auto ? "auto" : null;
            else st.values[p.name] = p.kind === "vector" ? inputs.map((inp) => Number(inp.value)) : Number(inputs[0].value);
            schedule(0);
          });
          row.append(h("label", { class: "wel-special-label" }, [box, word]));
        }
      }
      form.append(row);
    }
  }

  // -- sending changes: debounced, one in flight, latest values win ------------------------------------------
  function schedule(delay) {
    if (!st.firstInput) st.firstInput = performance.now();
    clearTimeout(st.timer);
    st.timer = setTimeout(send, delay);
  }

  function inFlight() {
    const answered = (model.get("outcome") || {}).seq || 0;
    return st.sentSeq > answered && performance.now() - (st.sentAt[st.sentSeq] || 0) < 15000;
  }

  function send() {
    if (inFlight()) { st.pending = true; return; }
    st.pending = false;
    if (JSON.stringify(st.values) === JSON.stringify(model.get("params"))) { st.firstInput = 0; return; }
    st.sentSeq = Math.max(st.sentSeq, model.get("seq") || 0) + 1;
    st.sentAt[st.sentSeq] = st.firstInput || performance.now();
    st.firstInput = 0;
    model.set("params", JSON.parse(JSON.stringify(st.values)));
    model.set("seq", st.sentSeq);
    model.save_changes();
  }

  // -- readouts -------------------------------------------------------------------------------------------
  function describe(o) {
    if (!o || o.success === null || o.success === undefined) return "";
    return o.success ? "pass" : `fail: ${o.failure_type}${o.collided_with ? ` (${o.collided_with})` : ""}`;
  }

  function renderOutcome() {
    const o = model.get("outcome") || {};
    const sel = model.get("selected");
    const feasible = o.feasible !== false;
    verdict.textContent = feasible ? `${sel >= 0 ? `sample #${sel}: ` : ""}${describe(o)} · PDMS* ${fmt(o.score, 2)}` : "infeasible edit";
    verdict.dataset.success = feasible ? String(Boolean(o.success)) : "infeasible";
    ttc.textContent = feasible ? ttcText(o.min_ttc_s) : "";
    realism.textContent = feasible && o.valid !== null && o.valid !== undefined
      ? `realism: ${o.valid ? "valid" : "not valid"} · kinematics ${o.kinematics_ok ? "ok" : "implausible"} · off-road ${fmt(100 * (o.offroad_rate || 0), 0)} % · collisions ${o.num_collisions}`
      : "";
    realism.dataset.valid = String(Boolean(o.valid));
    infeasible.textContent = feasible ? "" : o.error || "";
    infeasible.style.display = feasible ? "none" : "";
    const tm = o.timings_ms || {};
    timing.textContent = o.latency_ms !== undefined ? `${fmt(o.latency_ms, 0)} ms (sim ${fmt(tm.sim, 0)}, score ${fmt(tm.score, 0)})` : "";
    accept.disabled = reject.disabled = !feasible || !o.variant_id;
    root.dataset.seq = String(o.seq || 0);
    const sent = st.sentAt[o.seq];
    if (sent) {
      requestAnimationFrame(() => { root.dataset.roundtripMs = (performance.now() - sent).toFixed(1); });
      delete st.sentAt[o.seq];
    }
    if (st.pending) send();
    galleryBox.querySelectorAll(".wel-thumb").forEach((t) => t.classList.toggle("wel-on", Number(t.dataset.index) === sel));
  }

  function renderParent() {
    const o = model.get("parent_outcome") || {};
    parentLine.textContent = `parent: ${describe(o)} · ${ttcText(o.min_ttc_s)}`;
  }

  function renderMessages() {
    status.textContent = model.get("status") || "";
    const text = model.get("error") || "";
    errorBox.textContent = text;
    errorBox.style.display = text ? "" : "none";
  }

  // -- preview ----------------------------------------------------------------------------------------------
  function buildMap() {
    mapMeta = model.get("_map_meta") || {};
    mapArr = decode(mapMeta, model.get("_map_payload"));
    mapP = mapArr ? mapPaths(mapMeta, mapArr) : null;
    title.textContent = mapMeta.scenario_id || "";
    st.size[1] = mapMeta.height || 380;
    st.cacheKey = "";
  }

  function buildPreview() {
    const m = model.get("_meta") || {};
    const a = decode(m, model.get("_payload"));
    if (!a) return;
    const first = !meta;
    meta = m;
    arr = a;
    scrub.max = String(meta.num_steps - 1);
    st.t = meta.focus_t;
    scrub.value = String(st.t);
    if (first || !st.moved) fitView();
    draw();
  }

  function fitView() {
    if (!meta || !arr) return;
    const N = meta.num_agents, T = meta.num_steps, b = arr.boxes;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (let t = meta.t0; t < T; t++) {
      if (!arr.valid[t * N]) continue;
      const o = t * N * BOX;
      x0 = Math.min(x0, b[o]); x1 = Math.max(x1, b[o]); y0 = Math.min(y0, b[o + 1]); y1 = Math.max(y1, b[o + 1]);
    }
    if (!Number.isFinite(x0)) { [x0, y0, x1, y1] = mapMeta.bounds; }
    const pad = 25, [w, hh] = st.size;
    st.view = { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2,
      scale: Math.min(w / (x1 - x0 + 2 * pad), hh / (y1 - y0 + 2 * pad)) };
  }

  function applyView(ctx, view, w, hh, r) {
    ctx.setTransform(view.scale * r, 0, 0, -view.scale * r, (w / 2 - view.cx * view.scale) * r, (hh / 2 + view.cy * view.scale) * r);
  }

  function resize() {
    const w = Math.max(240, Math.floor(main.clientWidth || 520)), hh = st.size[1];
    if (w === st.size[0] && canvas.width) return;
    st.size = [w, hh];
    canvas.style.width = `${w}px`;
    canvas.style.height = `${hh}px`;
    canvas.width = Math.round(w * dpr());
    canvas.height = Math.round(hh * dpr());
    if (!st.moved) fitView();
    draw();
  }

  function draw() {
    if (!meta || !arr || !mapP || !st.view) return;
    const t0 = performance.now();
    const ctx = canvas.getContext("2d"), r = dpr(), [w, hh] = st.size, px = 1 / st.view.scale;
    const N = meta.num_agents, T = meta.num_steps, b = arr.boxes, t = st.t;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = BG;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    applyView(ctx, st.view, w, hh, r);
    ctx.lineJoin = "round";
    drawMap(ctx, mapP, mapMeta, px, false);
    for (let n = 1; n < N; n++) { // future paths from now
      ctx.strokeStyle = arr.edited[n] ? EDITED : "#adb5bd";
      ctx.lineWidth = (arr.edited[n] ? 2 : 1) * px;
      ctx.stroke(linePath((j) => (arr.valid[(meta.t0 + j) * N + n] ? [b[((meta.t0 + j) * N + n) * BOX], b[((meta.t0 + j) * N + n) * BOX + 1]] : null), T - meta.t0));
    }
    ctx.setLineDash([6 * px, 4 * px]);
    ctx.strokeStyle = LOGGED;
    ctx.lineWidth = 1.5 * px;
    ctx.stroke(linePath((j) => [arr.logged_ego[2 * j], arr.logged_ego[2 * j + 1]], T));
    ctx.setLineDash([]);
    ctx.strokeStyle = EGO;
    ctx.lineWidth = 3 * px;
    ctx.stroke(linePath((j) => (arr.events[j * EV] && arr.valid[j * N] ? [b[j * N * BOX], b[j * N * BOX + 1]] : null), T));
    const byType = [];
    const outline = new Path2D();
    for (let n = 1; n < N; n++) {
      if (!arr.valid[t * N + n]) continue;
      const ty = arr.agent_type[n];
      boxPath(byType[ty] || (byType[ty] = new Path2D()), b, (t * N + n) * BOX);
      if (arr.edited[n]) boxPath(outline, b, (t * N + n) * BOX);
    }
    ctx.strokeStyle = "#343a40";
    ctx.lineWidth = px;
    byType.forEach((p, ty) => { if (p) { ctx.fillStyle = mapMeta.type_colors[ty] || "#868e96"; ctx.fill(p); ctx.stroke(p); } });
    ctx.strokeStyle = EDITED;
    ctx.lineWidth = 2.5 * px;
    ctx.stroke(outline);
    if (arr.valid[t * N]) {
      const ego = new Path2D();
      boxPath(ego, b, t * N * BOX);
      ctx.fillStyle = EGO;
      ctx.fill(ego);
      ctx.strokeStyle = arr.events[t * EV + 1] ? COLLISION : "#212529";
      ctx.lineWidth = (arr.events[t * EV + 1] ? 3 : 1.5) * px;
      ctx.stroke(ego);
    }
    for (let j = 0; j < T; j++) { // the first collision
      if (!arr.events[j * EV + 1]) continue;
      const x = b[j * N * BOX], y = b[j * N * BOX + 1], rr = 5 * px;
      ctx.strokeStyle = COLLISION;
      ctx.lineWidth = 2.5 * px;
      ctx.beginPath();
      ctx.moveTo(x - rr, y - rr); ctx.lineTo(x + rr, y + rr); ctx.moveTo(x - rr, y + rr); ctx.lineTo(x + rr, y - rr);
      ctx.stroke();
      break;
    }
    const secs = (t - meta.t0) * meta.dt;
    tLabel.textContent = `${secs >= 0 ? "+" : ""}${secs.toFixed(1)} s`;
    root.dataset.drawMs = (performance.now() - t0).toFixed(2);
  }

  const requestDraw = () => { if (!st.raf) st.raf = requestAnimationFrame(() => { st.raf = 0; draw(); }); };

  // -- gallery ----------------------------------------------------------------------------------------------
  function buildGallery() {
    const rows = model.get("gallery") || [];
    gMeta = model.get("_gallery_meta") || {};
    gArr = decode(gMeta, model.get("_gallery_payload"));
    galleryBox.replaceChildren();
    galleryBox.style.display = rows.length ? "" : "none";
    if (!rows.length || !gArr || !mapP) return;
    galleryBox.append(h("div", { class: "wel-gallery-title", text: "behaviour world model alternatives (click to select)" }));
    const strip = h("div", { class: "wel-strip" });
    galleryBox.append(strip);
    const W = 160, H = 110, r = dpr();
    for (const row of rows) {
      const k = row.index, paths = gArr[`s${k}/paths`], ego = gArr[`s${k}/ego`];
      const shape = gMeta.arrays[`s${k}/paths`].shape, T = shape[0], N = shape[1];
      const c = h("canvas", { class: "wel-thumb-canvas" });
      c.width = W * r; c.height = H * r; c.style.width = `${W}px`; c.style.height = `${H}px`;
      const label = `#${k} ${row.success ? "pass" : `fail: ${row.failure_type}`} · ${ttcText(row.min_ttc_s)}${row.valid ? "" : " · not valid"}`;
      const item = h("div", { class: `wel-thumb ${row.success ? "wel-pass" : "wel-fail"}`, "data-index": String(k),
        title: row.variant_id, onclick: () => { model.set("selected", model.get("selected") === k ? -1 : k); model.save_changes(); } },
      [c, h("div", { class: "wel-thumb-label", text: label })]);
      strip.append(item);
      const t0 = row.t0, cx = ego[2 * t0], cy = ego[2 * t0 + 1];
      const view = { cx: Number.isFinite(cx) ? cx : 0, cy: Number.isFinite(cy) ? cy : 0, scale: W / 90 };
      const ctx = c.getContext("2d"), px = 1 / view.scale;
      ctx.fillStyle = BG;
      ctx.fillRect(0, 0, c.width, c.height);
      applyView(ctx, view, W, H, r);
      drawMap(ctx, mapP, mapMeta, px, true);
      ctx.lineWidth = 1.2 * px;
      ctx.strokeStyle = "#868e96";
      for (let n = 1; n < N; n++) ctx.stroke(linePath((j) => [paths[((t0 + j) * N + n) * 2], paths[((t0 + j) * N + n) * 2 + 1]], T - t0));
      ctx.strokeStyle = EGO;
      ctx.lineWidth = 2.5 * px;
      ctx.stroke(linePath((j) => [ego[2 * j], ego[2 * j + 1]], T));
    }
    renderOutcome();
  }

  // -- events -----------------------------------------------------------------------------------------------
  opSelect.addEventListener("change", () => { model.set("op", opSelect.value); model.save_changes(); });
  note.addEventListener("change", () => { model.set("note", note.value); model.save_changes(); });
  note.addEventListener("keydown", (ev) => ev.stopPropagation());
  let reqSeq = 0;
  const decide = (action) => {
    model.set("note", note.value);
    reqSeq += 1;
    model.set("request", { action, seq: Date.now() * 1000 + reqSeq });
    model.save_changes();
  };
  accept.addEventListener("click", () => decide("accept"));
  reject.addEventListener("click", () => decide("reject"));
  scrub.addEventListener("input", () => { st.t = Number(scrub.value); draw(); });
  scrub.addEventListener("keydown", (ev) => ev.stopPropagation());
  canvas.addEventListener("mousedown", (ev) => { st.drag = [ev.clientX, ev.clientY]; });
  const stopDrag = () => { st.drag = null; };
  window.addEventListener("mouseup", stopDrag);
  canvas.addEventListener("mousemove", (ev) => {
    if (!st.drag || !st.view) return;
    st.moved = true;
    st.view.cx -= (ev.clientX - st.drag[0]) / st.view.scale;
    st.view.cy += (ev.clientY - st.drag[1]) / st.view.scale;
    st.drag = [ev.clientX, ev.clientY];
    requestDraw();
  });
  canvas.addEventListener("wheel", (ev) => {
    if (!st.view) return;
    ev.preventDefault();
    st.moved = true;
    st.view.scale = Math.max(0.05, Math.min(200, st.view.scale * Math.exp(-ev.deltaY * 0.0015)));
    requestDraw();
  }, { passive: false });
  canvas.addEventListener("dblclick", () => { st.moved = false; fitView(); draw(); });

  const onOp = () => { opSelect.value = model.get("op"); buildForm(); };
  const onParams = () => { if (JSON.stringify(model.get("params")) !== JSON.stringify(st.values)) buildForm(); };
  const onNote = () => { if (document.activeElement !== note) note.value = model.get("note") || ""; };
  const handlers = [["change:ops", buildOps], ["change:op", onOp], ["change:params", onParams],
    ["change:outcome", renderOutcome], ["change:parent_outcome", renderParent], ["change:status", renderMessages],
    ["change:error", renderMessages], ["change:_map_payload", buildMap], ["change:_payload", buildPreview],
    ["change:_meta", buildPreview], ["change:_gallery_payload", buildGallery], ["change:gallery", buildGallery],
    ["change:selected", renderOutcome], ["change:note", onNote]];
  for (const [event, fn] of handlers) model.on(event, fn);
  const observer = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => resize()) : null;
  if (observer) observer.observe(main);

  buildOps();
  buildForm();
  buildMap();
  renderParent();
  renderMessages();
  onNote();
  buildPreview();
  resize();
  buildGallery();
  renderOutcome();
  return () => {
    for (const [event, fn] of handlers) model.off(event, fn);
    window.removeEventListener("mouseup", stopDrag);
    if (observer) observer.disconnect();
    clearTimeout(st.timer);
    cancelAnimationFrame(st.raf);
    root.remove();
  };
}

export default { render };
