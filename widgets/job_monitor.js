// JobMonitor front end: the job table, the selected job's progress and details, metric choices, cancel / resume.
// Self-contained ES module (no imports). The Python side polls the store and updates the traits; buttons send
// commands through the `request` trait ({action, seq}). The metric curve is a separate plotly widget.

const COLUMNS = ["job_id", "name", "kind", "status", "progress", "message", "created_at"];
const ACTIVE = new Set(["queued", "running"]);

function progressText(row) {
  if (row.total === null || row.total === undefined) return row.step === null || row.step === undefined ? "" : `${row.step}`;
  return `${row.step ?? 0}/${row.total}`;
}

function formatValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function render({ model, el }) {
  const root = h("div", { class: "wel-job-monitor", "data-lm-suppress-shortcuts": "true" });
  el.append(root);
  let seq = 0;
  const set = (name, value) => { model.set(name, value); model.save_changes(); };
  const send = (action) => { seq += 1; set("request", { action, seq: Date.now() * 1000 + seq }); };

  const thead = h("thead", {}, [h("tr", {}, COLUMNS.map((c) => h("th", { text: c })))]);
  const tbody = h("tbody");
  const table = h("table", { class: "wel-table" }, [thead, tbody]);

  const bar = h("progress", { class: "wel-progress", max: "1", value: "0" });
  const headline = h("span", { class: "wel-headline" });
  const cancel = h("button", { class: "wel-cancel", type: "button", text: "Cancel", onclick: () => send("cancel") });
  const resume = h("button", { class: "wel-resume", type: "button", text: "Resume", onclick: () => send("resume") });
  const refresh = h("button", { class: "wel-refresh", type: "button", text: "Refresh", onclick: () => send("refresh") });
  const pollBox = h("input", { class: "wel-polling", type: "checkbox", onchange: () => set("polling", pollBox.checked) });
  const details = h("dl", { class: "wel-details" });
  const metrics = h("div", { class: "wel-metrics" });
  const status = h("div", { class: "wel-status" });
  const error = h("div", { class: "wel-error", role: "alert" });

  root.append(
    h("div", { class: "wel-table-wrap" }, [table]),
    h("div", { class: "wel-controls" }, [headline, bar, cancel, resume, refresh,
                                         h("label", { class: "wel-poll-label" }, [pollBox, " live"])]),
    details, metrics, status, error,
  );

  function renderJobs() {
    const rows = model.get("jobs") || [];
    const selected = model.get("selected_job");
    if (!rows.length) {
      tbody.replaceChildren(h("tr", { class: "wel-empty" }, [h("td", { colspan: COLUMNS.length, text: "no jobs yet" })]));
      return;
    }
    tbody.replaceChildren(...rows.map((row) => h("tr", {
      class: `wel-row wel-status-${row.status}${row.job_id === selected ? " wel-selected" : ""}`,
      "data-job-id": row.job_id, onclick: () => set("selected_job", row.job_id),
    }, COLUMNS.map((c) => h("td", { "data-column": c, text: c === "progress" ? progressText(row) : formatValue(row[c]) })))));
  }

  function renderDetail() {
    const d = model.get("detail") || {};
    const active = ACTIVE.has(d.status);
    headline.textContent = d.job_id ? `${d.job_id}: ${d.status} ${progressText(d)} ${d.message || ""}` : "select a job";
    const total = Number(d.total), step = Number(d.step);
    if (Number.isFinite(total) && total > 0) { bar.max = total; bar.value = Math.min(step || 0, total); bar.style.display = ""; }
    else bar.style.display = "none";
    cancel.disabled = !active;
    resume.disabled = !(d.status === "failed" || d.status === "cancelled");
    const entries = [["error", d.error], ["attempt", d.attempt], ["backend", d.backend], ["run_dir", d.run_dir],
                     ["finished_at", d.finished_at]];
    for (const [k, v] of Object.entries(d.result || {})) entries.push([`result.${k}`, v]);
    details.replaceChildren(...entries.filter(([, v]) => v !== null && v !== undefined && v !== "").flatMap(([k, v]) => [
      h("dt", { text: k }), h("dd", { class: k === "error" ? "wel-job-error" : "", text: formatValue(v) }),
    ]));
    renderJobs();
  }

  function renderMetrics() {
    const chosen = new Set(model.get("chosen_metrics") || []);
    const keys = model.get("metric_keys") || [];
    metrics.replaceChildren(...keys.map((k) => {
      const box = h("input", { type: "checkbox", checked: chosen.has(k), onchange: () => {
        const next = new Set(model.get("chosen_metrics") || []);
        if (box.checked) next.add(k); else next.delete(k);
        set("chosen_metrics", keys.filter((x) => next.has(x)));
      } });
      return h("label", { class: "wel-metric" }, [box, ` ${k}`]);
    }));
  }

  function renderMessages() {
    pollBox.checked = !!model.get("polling");
    status.textContent = model.get("status") || "";
    const text = model.get("error") || "";
    error.textContent = text;
    error.style.display = text ? "" : "none";
  }

  const handlers = [
    ["change:jobs", renderJobs], ["change:selected_job", renderJobs], ["change:detail", renderDetail],
    ["change:metric_keys", renderMetrics], ["change:chosen_metrics", renderMetrics],
    ["change:polling", renderMessages], ["change:status", renderMessages], ["change:error", renderMessages],
  ];
  for (const [event, fn] of handlers) model.on(event, fn);
  renderDetail();
  renderMetrics();
  renderMessages();
  return () => { for (const [event, fn] of handlers) model.off(event, fn); };
}

export default { render };
