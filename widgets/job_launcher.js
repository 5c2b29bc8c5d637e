// JobLauncher front end: recipe, data, base checkpoint, hyperparameters, backend, and a Launch button.
// Self-contained ES module (no imports). State lives in the model's traits; the Launch and Refresh buttons send
// commands through the `request` trait ({action, seq}) and the Python side makes the library call.

function field(label, control) {
  return h("label", { class: "wel-field" }, [h("span", { class: "wel-field-label", text: label }), control]);
}

let listCounter = 0;

function render({ model, el }) {
  const root = h("div", { class: "wel-job-launcher", "data-lm-suppress-shortcuts": "true" });
  el.append(root);
  let seq = 0;
  const set = (name, value) => { model.set(name, value); model.save_changes(); };
  const send = (action) => { seq += 1; set("request", { action, seq: Date.now() * 1000 + seq }); };

  const recipe = h("select", { class: "wel-recipe", onchange: () => set("recipe", recipe.value) });
  const recipeInfo = h("span", { class: "wel-recipe-info" });
  const data = h("select", { class: "wel-data", onchange: () => set("failures", data.value) });
  listCounter += 1;
  const listId = `wel-checkpoints-${listCounter}`;
  const checkpoints = h("datalist", { id: listId });
  const base = h("input", { class: "wel-base", type: "text", list: listId, placeholder: "path/to/model.pt",
                            onchange: () => set("base", base.value.trim()) });
  const iterations = h("input", { class: "wel-iterations", type: "number", min: "1", step: "1",
                                  onchange: () => set("iterations", Math.max(1, parseInt(iterations.value, 10) || 1)) });
  const finetune = h("select", { class: "wel-finetune", onchange: () => set("finetune", finetune.value) },
    ["lora", "full"].map((v) => h("option", { value: v, text: v })));
  const lr = h("input", { class: "wel-lr", type: "number", min: "0", step: "any",
                          onchange: () => { const x = Number(lr.value); if (Number.isFinite(x) && x > 0) set("lr", x); } });
  const backend = h("select", { class: "wel-backend", onchange: () => set("backend", backend.value) },
    ["local", "ray"].map((v) => h("option", { value: v, text: v })));
  const launchButton = h("button", { class: "wel-launch", type: "button", text: "Launch", onclick: () => send("launch") });
  const refreshButton = h("button", { class: "wel-refresh", type: "button", text: "Refresh lists", onclick: () => send("refresh") });
  const status = h("div", { class: "wel-status" });
  const error = h("div", { class: "wel-error", role: "alert" });

  root.append(
    h("div", { class: "wel-row" }, [field("recipe", recipe), recipeInfo]),
    h("div", { class: "wel-row" }, [field("data", data)]),
    h("div", { class: "wel-row" }, [field("base checkpoint", base), checkpoints]),
    h("div", { class: "wel-row" }, [field("iterations", iterations), field("finetune", finetune), field("lr", lr),
                                     field("backend", backend)]),
    h("div", { class: "wel-row" }, [launchButton, refreshButton]),
    status, error,
  );

  function renderRecipes() {
    const rows = model.get("recipes") || [];
    recipe.replaceChildren(...rows.map((r) => h("option", { value: r.name, text: r.name })));
    recipe.value = model.get("recipe");
    const r = rows.find((x) => x.name === model.get("recipe"));
    recipeInfo.textContent = r ? `${r.objective} on ${r.data} ${r.states}${r.variants ? " + variants" : ""}` +
      `${r.replay ? ", common replay" : ""}` : "";
  }
  function renderData() {
    const options = model.get("data_options") || [];
    const current = model.get("failures");
    const known = options.some((o) => o.value === current);
    data.replaceChildren(...options.map((o) => h("option", { value: o.value, text: o.label })),
      ...(known ? [] : [h("option", { value: current, text: current })]));
    data.value = current;
  }
  function renderCheckpoints() {
    checkpoints.replaceChildren(...(model.get("checkpoints") || []).map((p) => h("option", { value: p })));
    if (document.activeElement !== base) base.value = model.get("base") || "";
  }
  function renderParams() {
    if (document.activeElement !== iterations) iterations.value = String(model.get("iterations"));
    if (document.activeElement !== lr) lr.value = String(model.get("lr"));
    finetune.value = model.get("finetune");
    backend.value = model.get("backend");
  }
  function renderMessages() {
    const job = model.get("job_id");
    status.textContent = model.get("status") || (job ? `last job: ${job}` : "");
    const text = model.get("error") || "";
    error.textContent = text;
    error.style.display = text ? "" : "none";
  }

  const handlers = [
    ["change:recipes", renderRecipes], ["change:recipe", renderRecipes],
    ["change:data_options", renderData], ["change:failures", renderData],
    ["change:checkpoints", renderCheckpoints], ["change:base", renderCheckpoints],
    ...["iterations", "lr", "finetune", "backend"].map((n) => [`change:${n}`, renderParams]),
    ...["status", "error", "job_id"].map((n) => [`change:${n}`, renderMessages]),
  ];
  for (const [event, fn] of handlers) model.on(event, fn);
  renderRecipes();
  renderData();
  renderCheckpoints();
  renderParams();
  renderMessages();
  return () => { for (const [event, fn] of handlers) model.off(event, fn); };
}

export default { render };
