// FailureBrowser front end: filter controls, a paged sortable table, tag / untag and save-view boxes.
// Self-contained ES module (no imports). All state lives in the model's traits; commands go through the
// `request` trait ({action, seq, ...}) and are carried out by the Python side, one library call each.

function formatCell(value) {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.join(", ");
  if (typeof value === "number") {
    return Number.isInteger(value) ? String(value) : value.toFixed(3);
  }
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

function parseBound(text) {
  const t = String(text).trim();
  if (t === "") return null;
  const x = Number(t);
  return Number.isFinite(x) ? x : null;
}

const SELECTS = [
  // [filter field, option list key in `options`, class, label of the "all" option]
  ["failure_types", "failure_types", "wel-filter-failure-type", "all failure types"],
  ["tags", "tags", "wel-filter-tag", "any tag"],
  ["map_names", "map_names", "wel-filter-map", "all maps"],
  ["splits", "splits", "wel-filter-split", "all splits"],
];

function render({ model, el }) {
  const root = h("div", { class: "wel-failure-browser", "data-lm-suppress-shortcuts": "true" });
  el.append(root);
  let seq = 0;
  let searchTimer = null;

  const setFilter = (patch) => {
    const next = { ...model.get("filter_dict"), ...patch };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null || (Array.isArray(value) && value.length === 0) || value === "") delete next[key];
    }
    model.set("filter_dict", next);
    model.save_changes();
  };
  const send = (action, args = {}) => {
    seq += 1;
    model.set("request", { action, seq: Date.now() * 1000 + seq, ...args });
    model.save_changes();
  };

  // -- filter bar ---------------------------------------------------------------------------------------
  const selects = {};
  const bar = h("div", { class: "wel-filters" });
  for (const [field, , cls, allLabel] of SELECTS) {
    const select = h("select", {
      class: `wel-filter ${cls}`, title: field.replace("_", " "),
      onchange: () => setFilter({ [field]: select.value === "" ? [] : [select.value] }),
    }, [h("option", { value: "", text: allLabel })]);
    selects[field] = { select, allLabel };
    bar.append(select);
  }
  const search = h("input", {
    class: "wel-search", type: "search", placeholder: "search ids, reasons, tags…",
    oninput: () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => setFilter({ search: search.value }), 250);
    },
    onkeydown: (event) => {
      if (event.key === "Enter") {
        clearTimeout(searchTimer);
        setFilter({ search: search.value });
      }
    },
  });
  bar.append(search);

  const rangeColumn = h("select", { class: "wel-range-column", title: "metric" });
  const rangeLo = h("input", { class: "wel-range-lo", type: "number", step: "any", placeholder: "min" });
  const rangeHi = h("input", { class: "wel-range-hi", type: "number", step: "any", placeholder: "max" });
  const rangeApply = h("button", {
    class: "wel-range-apply", type: "button", text: "set range",
    onclick: () => {
      const ranges = { ...(model.get("filter_dict").metric_ranges || {}) };
      const lo = parseBound(rangeLo.value), hi = parseBound(rangeHi.value);
      if (lo === null && hi === null) delete ranges[rangeColumn.value];
      else ranges[rangeColumn.value] = [lo, hi];
      setFilter({ metric_ranges: Object.keys(ranges).length ? ranges : null });
    },
  });
  const chips = h("span", { class: "wel-ranges" });
  const rangeBar = h("div", { class: "wel-range-bar" }, [rangeColumn, rangeLo, rangeHi, rangeApply, chips]);

  // -- count, brush, selection ----------------------------------------------------------------------------
  const count = h("span", { class: "wel-count", "data-count": "0" });
  const brush = h("span", { class: "wel-brush" });
  const brushClear = h("button", { class: "wel-brush-clear", type: "button", text: "clear plot selection",
                                   onclick: () => send("clear_brush") });
  const selectedInfo = h("span", { class: "wel-selected-count" });
  const selectPage = h("button", {
    class: "wel-select-page", type: "button", text: "select page",
    onclick: () => {
      const ids = new Set(model.get("selected"));
      for (const row of model.get("rows")) ids.add(row.scenario_id);
      model.set("selected", [...ids]);
      model.save_changes();
    },
  });
  const clearSelection = h("button", { class: "wel-clear-selection", type: "button", text: "clear selection",
                                       onclick: () => { model.set("selected", []); model.save_changes(); } });
  const info = h("div", { class: "wel-info" }, [count, brush, brushClear, selectedInfo, selectPage, clearSelection]);

  // -- table and pager ------------------------------------------------------------------------------------
  const thead = h("thead");
  const tbody = h("tbody");
  const table = h("table", { class: "wel-table" }, [thead, tbody]);
  const prev = h("button", { class: "wel-prev", type: "button", text: "‹ prev",
                             onclick: () => { model.set("page", Math.max(0, model.get("page") - 1)); model.save_changes(); } });
  const next = h("button", { class: "wel-next", type: "button", text: "next ›",
                             onclick: () => { model.set("page", model.get("page") + 1); model.save_changes(); } });
  const pageLabel = h("span", { class: "wel-page" });
  const pager = h("div", { class: "wel-pager" }, [prev, pageLabel, next]);

  // -- curation -------------------------------------------------------------------------------------------
  const tagInput = h("input", { class: "wel-tag-input", type: "text", placeholder: "tag" });
  const tagAdd = h("button", { class: "wel-tag-add", type: "button", text: "tag selected",
                               onclick: () => tagInput.value.trim() && send("tag", { tag: tagInput.value.trim() }) });
  const tagRemove = h("button", { class: "wel-tag-remove", type: "button", text: "untag selected",
                                  onclick: () => tagInput.value.trim() && send("untag", { tag: tagInput.value.trim() }) });
  const viewName = h("input", { class: "wel-view-name", type: "text", placeholder: "view name" });
  const overwrite = h("input", { class: "wel-view-overwrite", type: "checkbox" });
  const viewSave = h("button", {
    class: "wel-view-save", type: "button", text: "save view",
    onclick: () => viewName.value.trim() && send("save_view", { name: viewName.value.trim(), overwrite: overwrite.checked }),
  });
  const actions = h("div", { class: "wel-actions" }, [
    tagInput, tagAdd, tagRemove, h("span", { class: "wel-sep" }),
    viewName, h("label", { class: "wel-overwrite-label" }, [overwrite, " overwrite"]), viewSave,
  ]);
  const status = h("div", { class: "wel-status" });
  const error = h("div", { class: "wel-error", role: "alert" });

  root.append(bar, rangeBar, info, h("div", { class: "wel-table-wrap" }, [table]), pager, actions, status, error);

  // -- renderers ------------------------------------------------------------------------------------------
  function renderOptions() {
    const options = model.get("options") || {};
    const counts = options.counts || {};
    for (const [field, key] of SELECTS) {
      const { select, allLabel } = selects[field];
      const values = options[key] || [];
      const n = counts[key] || {};
      select.replaceChildren(h("option", { value: "", text: allLabel }),
        ...values.map((v) => h("option", { value: v, text: n[v] === undefined ? v : `${v} (${n[v]})` })));
    }
    const numeric = options.numeric_columns || [];
    const current = rangeColumn.value;
    rangeColumn.replaceChildren(...numeric.map((c) => h("option", { value: c, text: c })));
    if (numeric.includes(current)) rangeColumn.value = current;
    renderFilter();
  }

  function renderFilter() {
    const f = model.get("filter_dict") || {};
    for (const [field] of SELECTS) {
      const { select } = selects[field];
      const chosen = f[field] || [];
      select.querySelectorAll("option.wel-multi").forEach((o) => o.remove());
      if (chosen.length === 1 && [...select.options].some((o) => o.value === chosen[0])) {
        select.value = chosen[0];
      } else if (chosen.length >= 1) {
        const multi = h("option", { class: "wel-multi", value: "__multi__", text: `${chosen.length} chosen`, disabled: true });
        select.append(multi);
        select.value = "__multi__";
      } else {
        select.value = "";
      }
    }
    if (document.activeElement !== search) search.value = f.search || "";
    const ranges = f.metric_ranges || {};
    chips.replaceChildren(...Object.entries(ranges).map(([col, [lo, hi]]) => h("span", { class: "wel-range-chip" }, [
      `${col} ∈ [${lo === null ? "−∞" : lo}, ${hi === null ? "∞" : hi}] `,
      h("button", { class: "wel-range-remove", type: "button", text: "×", title: `remove the ${col} range`,
                    onclick: () => {
                      const rest = { ...ranges };
                      delete rest[col];
                      setFilter({ metric_ranges: Object.keys(rest).length ? rest : null });
                    } }),
    ])));
  }

  function renderHeader() {
    const sort = model.get("sort") || {};
    const cells = [h("th", { class: "wel-check-col" })];
    for (const col of model.get("columns")) {
      const active = sort.column === col;
      const arrow = active ? (sort.descending ? " ▼" : " ▲") : "";
      cells.push(h("th", {
        class: active ? "wel-sortable wel-sorted" : "wel-sortable", "data-column": col, text: col + arrow,
        title: "sort by " + col,
        onclick: () => {
          const desc = active ? !sort.descending : false;
          model.set("sort", { column: col, descending: desc });
          model.save_changes();
        },
      }));
    }
    thead.replaceChildren(h("tr", {}, cells));
  }

  function toggle(id) {
    const selected = new Set(model.get("selected"));
    if (selected.has(id)) selected.delete(id);
    else selected.add(id);
    model.set("selected", [...selected]);
    model.save_changes();
  }

  function renderRows() {
    const columns = model.get("columns");
    const selected = new Set(model.get("selected"));
    const rows = model.get("rows") || [];
    if (!rows.length) {
      tbody.replaceChildren(h("tr", { class: "wel-empty" }, [h("td", { colspan: columns.length + 1, text: "no failures match" })]));
      return;
    }
    tbody.replaceChildren(...rows.map((row) => {
      const id = row.scenario_id;
      const isSelected = selected.has(id);
      const box = h("input", { type: "checkbox", class: "wel-row-check", checked: isSelected,
                               onclick: (event) => { event.stopPropagation(); toggle(id); } });
      const cells = [h("td", { class: "wel-check-col" }, [box])];
      for (const col of columns) cells.push(h("td", { "data-column": col, text: formatCell(row[col]) }));
      return h("tr", { class: isSelected ? "wel-row wel-selected" : "wel-row", "data-scenario-id": id,
                       "data-row": row._row, onclick: () => toggle(id) }, cells);
    }));
  }

  function renderCounts() {
    const total = model.get("total");
    const all = model.get("num_rows");
    count.setAttribute("data-count", String(total));
    count.textContent = `${total} of ${all} failures`;
    const brushed = model.get("brushed");
    brush.textContent = brushed >= 0 ? `plot selection: ${brushed} rows` : "";
    brushClear.style.display = brushed >= 0 ? "" : "none";
    const pages = Math.max(1, Math.ceil(total / Math.max(1, model.get("page_size"))));
    const page = model.get("page");
    pageLabel.textContent = `page ${Math.min(page + 1, pages)} / ${pages}`;
    prev.disabled = page <= 0;
    next.disabled = page + 1 >= pages;
  }

  function renderSelection() {
    const n = model.get("selected").length;
    selectedInfo.textContent = n ? `${n} selected` : "";
    clearSelection.disabled = n === 0;
    const canCurate = model.get("has_workspace");
    tagAdd.disabled = tagRemove.disabled = !canCurate || n === 0;
    viewSave.disabled = !canCurate;
    renderRows();
  }

  function renderMessages() {
    status.textContent = model.get("status") || "";
    const text = model.get("error") || "";
    error.textContent = text;
    error.style.display = text ? "" : "none";
  }

  const onColumns = () => { renderHeader(); renderRows(); };
  const handlers = [
    ["change:options", renderOptions],
    ["change:filter_dict", renderFilter],
    ["change:sort", renderHeader],
    ["change:columns", onColumns],
    ["change:rows", renderRows],
    ["change:selected", renderSelection],
    ["change:has_workspace", renderSelection],
    ["change:status", renderMessages],
    ["change:error", renderMessages],
    ...["total", "num_rows", "page", "page_size", "brushed"].map((name) => [`change:${name}`, renderCounts]),
  ];
  for (const [event, fn] of handlers) model.on(event, fn);
  renderOptions();
  renderHeader();
  renderSelection();
  renderCounts();
  renderMessages();

  return () => {
    clearTimeout(searchTimer);
    for (const [event, fn] of handlers) model.off(event, fn);
  };
}

export default { render };
