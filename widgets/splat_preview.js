// SplatPreview front end: draws the camera image rendered in Python and the projected plan on a <canvas>.
//
// Model: `_image` (raw uint8 RGB bytes) with `_image_shape` [H, W, 3]; `_plan` (little-endian float32 pixel
// coordinates [M, 2], NaN rows break the line) with `_plan_shape`; `_meta` (t, scenario id, tile layout of the
// grid, backend); `t`, `camera`, `cameras`, `show_depth`, `show_grid`, `show_plan`, `render_ms`, `error`.
// The controls write `camera` / `show_*` back; Python re-renders and sends a new image.
//
// DOM contract: root `.wel-splat-preview` with `data-t` (the step of the image drawn last) and `data-draw-ms`;
// `select.wel-camera`; checkboxes `input.wel-depth`, `input.wel-grid`, `input.wel-plan`; `canvas.wel-image`;
// `.wel-error` (shown when `error` is not empty).

const PLAN_COLOR = "#22b8cf";
const PLAN_HALO = "rgba(0, 0, 0, 0.55)";

function floatsOf(value) {
  let u8 = bytesOf(value);
  if (u8.byteOffset % 4 !== 0) u8 = u8.slice(); // typed views need 4-byte alignment
  return new Float32Array(u8.buffer, u8.byteOffset, Math.floor(u8.byteLength / 4));
}

function el(tag, cls, parent, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

function toggle(parent, cls, label) {
  const wrap = el("label", "wel-toggle", parent);
  const box = el("input", cls, wrap);
  box.type = "checkbox";
  el("span", "", wrap, label);
  return box;
}

function createPreview(model, root) {
  const head = el("div", "wel-head", root);
  const title = el("span", "wel-title", head);
  const controls = el("div", "wel-controls", head);
  const select = el("select", "wel-camera", controls);
  const depth = toggle(controls, "wel-depth", "depth");
  const grid = toggle(controls, "wel-grid", "all cameras");
  const plan = toggle(controls, "wel-plan", "plan");
  const status = el("span", "wel-status", head);
  const canvas = el("canvas", "wel-image", root);
  const errorBox = el("div", "wel-error", root);
  const source = document.createElement("canvas"); // the image at its native size

  function syncControls() {
    const names = model.get("cameras") || [];
    if (select.options.length !== names.length || names.some((n, i) => select.options[i].value !== n)) {
      select.textContent = "";
      for (const n of names) el("option", "", select, n).value = n;
    }
    select.value = model.get("camera");
    select.disabled = !!model.get("show_grid");
    depth.checked = !!model.get("show_depth");
    grid.checked = !!model.get("show_grid");
    plan.checked = !!model.get("show_plan");
  }

  function draw() {
    const t0 = performance.now();
    const shape = model.get("_image_shape") || [];
    const meta = model.get("_meta") || {};
    const [h, w] = shape;
    const rgb = bytesOf(model.get("_image"));
    if (!h || !w || rgb.length !== h * w * 3) return; // the shape and its bytes arrive together
    if (source.width !== w || source.height !== h) {
      source.width = w;
      source.height = h;
    }
    const sctx = source.getContext("2d");
    const img = sctx.createImageData(w, h);
    const px = img.data;
    for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
      px[j] = rgb[i];
      px[j + 1] = rgb[i + 1];
      px[j + 2] = rgb[i + 2];
      px[j + 3] = 255;
    }
    sctx.putImageData(img, 0, 0);
    // display at up to 2x (and at least 640 px wide for small previews), crisp on high-DPI screens
    const k = Math.max(1, Math.min(4, Math.round(640 / w)));
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(w * k * dpr);
    canvas.height = Math.round(h * k * dpr);
    canvas.style.width = `${w * k}px`;
    canvas.style.maxWidth = "100%";
    const ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
    const s = k * dpr;
    ctx.setTransform(s, 0, 0, s, 0, 0);
    for (const tile of meta.tiles || []) { // camera names on grid tiles
      if ((meta.tiles || []).length < 2) break;
      ctx.font = "10px sans-serif";
      ctx.fillStyle = "rgba(0, 0, 0, 0.5)";
      ctx.fillRect(tile.x + 2, tile.y + 2, 7 * tile.name.length + 6, 13);
      ctx.fillStyle = "#fff";
      ctx.fillText(tile.name, tile.x + 5, tile.y + 12);
    }
    if (model.get("show_plan")) drawPlan(ctx, floatsOf(model.get("_plan")), k);
    root.dataset.t = String(meta.t !== undefined ? meta.t : model.get("t"));
    root.dataset.drawMs = (performance.now() - t0).toFixed(2);
    const ms = model.get("render_ms");
    title.textContent = `${meta.scenario_id || ""} · t = ${meta.t !== undefined ? meta.t : ""}`;
    status.textContent = `${w}×${h} · ${meta.backend || ""} · ${ms > 0 ? `${ms.toFixed(0)} ms` : "cached"}`;
  }

  function drawPlan(ctx, xy, k) {
    // xy: image pixels; the context is scaled to image pixels, so widths are CSS px / k
    const path = new Path2D();
    let pen = false;
    for (let i = 0; i + 1 < xy.length; i += 2) {
      const x = xy[i], y = xy[i + 1];
      if (!Number.isFinite(x) || !Number.isFinite(y)) { pen = false; continue; }
      if (pen) path.lineTo(x, y); else path.moveTo(x, y);
      pen = true;
    }
    ctx.lineJoin = "round";
    ctx.lineCap = "round";
    ctx.strokeStyle = PLAN_HALO;
    ctx.lineWidth = 5 / k;
    ctx.stroke(path);
    ctx.strokeStyle = PLAN_COLOR;
    ctx.lineWidth = 2.5 / k;
    ctx.stroke(path);
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

  const send = (name, value) => { model.set(name, value); model.save_changes(); };
  select.addEventListener("change", () => send("camera", select.value));
  depth.addEventListener("change", () => send("show_depth", depth.checked));
  grid.addEventListener("change", () => send("show_grid", grid.checked));
  plan.addEventListener("change", () => { send("show_plan", plan.checked); draw(); });

  const onImage = () => { syncControls(); draw(); };
  model.on("change:_image", onImage);
  model.on("change:_plan", draw);
  model.on("change:_meta", draw);
  model.on("change:camera", syncControls);
  model.on("change:cameras", syncControls);
  model.on("change:show_depth", syncControls);
  model.on("change:show_grid", syncControls);
  model.on("change:show_plan", syncControls);
  model.on("change:error", syncError);
  syncControls();
  draw();
  syncError();
  return () => {
    model.off("change:_image", onImage);
    model.off("change:_plan", draw);
    model.off("change:_meta", draw);
    for (const name of ["camera", "cameras", "show_depth", "show_grid", "show_plan"]) {
      model.off(`change:${name}`, syncControls);
    }
    model.off("change:error", syncError);
  };
}

export default {
  render({ model, el: host }) {
    const root = document.createElement("div");
    root.className = "wel-splat-preview";
    root.dataset.t = "";
    root.dataset.drawMs = "";
    host.appendChild(root);
    const cleanup = createPreview(model, root);
    return () => { cleanup(); root.remove(); };
  },
};
