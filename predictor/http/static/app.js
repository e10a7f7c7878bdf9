// The iris page: submits the form to POST /predict and keeps the model panel fresh from GET /v1/model; draws the
// serving model's training sample with the visitor's flower (GET /v1/model/training-sample) and, for operators,
// live accuracy and drift (GET /v1/model/monitoring) with charts.js.
// Vanilla JS, no dependencies. Server data is only ever written with textContent.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("page-config").textContent);
  const PREDICT_URL = "/predict";
  const MODEL_URL = "/v1/model";
  const SAMPLE_URL = "/v1/model/training-sample";
  const MONITORING_URL = "/v1/model/monitoring";
  const MONITORING_POLL_MS = 10000;
  const charts = window.IrisCharts;
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "style") node.setAttribute("style", value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function percent(p) {
    return (Math.round(p * 1000) / 10).toFixed(1) + " %";
  }

  // <time> with the date and the clock time as two unbreakable parts (a narrow column wraps between them).
  function timeNode(iso) {
    if (!iso) return "—";
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return String(iso);
    const date = when.toLocaleDateString(undefined, { dateStyle: "medium" });
    const clock = when.toLocaleTimeString(undefined, { timeStyle: "medium" });
    return el("time", { datetime: iso }, el("span", { class: "nowrap" }, date), " ", el("span", { class: "nowrap" }, clock));
  }

  // ---- the form -------------------------------------------------------------------------------

  const form = $("predict-form");
  const formError = $("form-error");
  const button = $("predict-button");

  function clearErrors() {
    for (const name of config.features) {
      $(name + "-error").textContent = "";
      $(name).removeAttribute("aria-invalid");
    }
    formError.textContent = "";
  }

  function showFieldError(name, message) {
    const slot = $(name + "-error");
    slot.textContent = slot.textContent ? slot.textContent + " " + message : message;
    $(name).setAttribute("aria-invalid", "true");
  }

  // The API's value for one input: a number; null for text the browser cannot read as a number; undefined (the
  // feature is left out) for an empty input. The server names the problem either way.
  function readValue(input) {
    if (input.validity.badInput) return null;
    if (input.value.trim() === "") return undefined;
    const number = Number(input.value);
    return Number.isFinite(number) ? number : input.value;
  }

  // Which form field an error location like "instances[0].petal_width" or ["instances", 0, "petal_width"] names.
  function fieldOf(location) {
    const parts = Array.isArray(location) ? location.map(String) : String(location || "").split(/[.\[\]]+/);
    return parts.reverse().find((part) => config.features.includes(part)) || null;
  }

  // Normalise the API's error details into [{field, message}] (field may be null).
  function detailItems(details, fallback) {
    if (details === null || details === undefined) return [];
    if (Array.isArray(details)) {
      return details.flatMap((item) => {
        if (item && typeof item === "object") {
          const location = item.field ?? item.loc ?? item.path ?? item.location ?? item.name;
          const message = item.message ?? item.msg ?? item.reason ?? item.error ?? fallback;
          return [{ field: fieldOf(location), message: String(message) }];
        }
        return [{ field: fieldOf(item), message: fallback }];
      });
    }
    if (typeof details === "object") {
      if ("field" in details || "loc" in details || "path" in details) return detailItems([details], fallback);
      return Object.entries(details).map(([key, value]) => ({
        field: fieldOf(key),
        message: typeof value === "string" ? value : (value && (value.message || value.msg)) || fallback,
      }));
    }
    return [{ field: fieldOf(details), message: fallback }];
  }

  function showApiError(status, body) {
    const error = (body && body.error) || {};
    const message = error.message || "The service answered with HTTP " + status + ".";
    const items = status === 400 ? detailItems(error.details, message) : [];
    const placed = items.filter((item) => item.field);
    for (const item of placed) showFieldError(item.field, item.message);
    if (placed.length === 0 || items.length > placed.length) formError.textContent = message;
    $("result").replaceChildren(el("p", { class: "muted", id: "result-error" }, "No prediction: " + message));
    if (placed.length) $(placed[0].field).focus();
  }

  function renderPrediction(body, headerVersion) {
    const prediction = body.predictions[0];
    const version = body.model_version || headerVersion || "unknown";
    const probabilities = prediction.probabilities || {};
    const classes = config.classes.filter((c) => c in probabilities);
    const bars = el("ul", { class: "bars", "aria-label": "Probability of each species" });
    for (const species of classes) {
      const p = Number(probabilities[species]) || 0;
      const width = Math.max(0, Math.min(100, p * 100)).toFixed(1);
      bars.append(
        el(
          "li",
          { class: species === prediction.species ? "bar-row top" : "bar-row" },
          el("span", { class: "bar-label" }, species),
          el("span", { class: "bar-track", "aria-hidden": "true" },
            el("span", { class: "bar-fill", style: "width: " + width + "%" })),
          el("span", { class: "bar-value" }, percent(p)),
        ),
      );
    }
    const result = $("result");
    result.replaceChildren(
      el("p", { class: "species" }, "Species: ", el("strong", { id: "result-species" }, prediction.species)),
      bars,
      el("p", { class: "answered-by" }, "Answered by model ", el("code", { id: "result-version" }, version)),
    );
  }

  async function submit(event) {
    if (event) event.preventDefault();
    clearErrors();
    const instance = {};
    for (const name of config.features) {
      const value = readValue($(name));
      if (value !== undefined) instance[name] = value;
    }
    button.disabled = true;
    button.textContent = "Predicting…";
    try {
      const response = await fetch(PREDICT_URL, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ instances: [instance] }),
      });
      const body = await response.json().catch(() => null);
      if (response.ok && body && Array.isArray(body.predictions) && body.predictions.length) {
        renderPrediction(body, response.headers.get("X-Model-Version"));
        placeVisitor(instance, body.predictions[0].species);
      } else {
        showApiError(response.status, body);
      }
    } catch (err) {
      formError.textContent = "Could not reach the service: " + err.message;
      $("result").replaceChildren(el("p", { class: "muted", id: "result-error" }, "No prediction: service unreachable."));
    } finally {
      button.disabled = false;
      button.textContent = "Predict species";
    }
  }

  form.addEventListener("submit", submit);
  for (const example of document.querySelectorAll("button.example")) {
    example.addEventListener("click", () => {
      const values = JSON.parse(example.dataset.values);
      for (const [name, value] of Object.entries(values)) $(name).value = value;
      submit(null);
    });
  }

  // ---- the model panel ------------------------------------------------------------------------

  let shownVersion = null;
  let changeTimer = null;

  function metric(metrics, ...names) {
    for (const name of names) {
      if (metrics && typeof metrics[name] === "number") return percent(metrics[name]);
    }
    return "—";
  }

  // Plain words for the registry's reason codes (core.store's ArtifactRejected reasons and the registry's skips).
  const REASONS = {
    unsigned: "the artifact carries no signature",
    bad_signature: "the signature does not match (wrong key or altered metadata)",
    hash_mismatch: "the content does not match its signed hash",
    bad_metadata: "its lineage metadata is unreadable",
    version_mismatch: "it was signed for a different version than its name says",
    bad_name: "the object name is not a model artifact name",
    unpickle_failed: "it could not be unpickled safely",
    schema_mismatch: "its features or classes do not match the schema",
    warmup_failed: "it mispredicted the known example flowers",
    not_found: "the object was gone before it could be loaded",
    future_version: "its version is dated in the future",
    pinned: "the service is pinned to another version",
    older: "it is older than the serving model",
    already_serving: "it is already the serving model",
    already_rejected: "it was rejected before",
    not_a_model: "the object is not a model artifact",
  };

  // The registry's own message ("<reason>: <text>", or "<Type>: <text>" for a failure) without the repeated code.
  function detailOf(entry) {
    if (!entry.message) return null;
    const prefix = entry.reason ? entry.reason + ": " : "";
    return prefix && entry.message.startsWith(prefix) ? entry.message.slice(prefix.length) : entry.message;
  }

  function reasonNode(entry) {
    const detail = detailOf(entry);
    if (!entry.reason && !detail) return null;
    const words = REASONS[entry.reason] || detail;
    const code = entry.reason ? el("code", {}, entry.reason) : null;
    const more = detail && detail !== words ? el("div", { class: "history-detail" }, detail) : null;
    return el("div", { class: "history-reason" }, code, code && words ? ": " : "", words, more);
  }

  function seconds(value) {
    return value < 1 ? (value * 1000).toFixed(value < 0.01 ? 1 : 0) + " ms" : value.toFixed(2) + " s";
  }

  function historyItem(entry) {
    const outcome = String(entry.outcome || "unknown");
    const head = el(
      "div",
      { class: "history-head" },
      el("span", { class: "outcome outcome-" + outcome.replace(/[^a-z]/g, "") }, outcome),
      " ",
      el("code", {}, entry.version || entry.object || "—"),
    );
    const facts = [entry.trigger ? "via " + entry.trigger : null];
    if (typeof entry.duration_s === "number" && entry.outcome !== "ignored") facts.push(seconds(entry.duration_s));
    const meta = el("div", { class: "history-meta" }, timeNode(entry.at), " ", facts.filter(Boolean).join(" · "));
    return el("li", { class: "history-item" }, head, meta, reasonNode(entry));
  }

  function renderHistory(history) {
    const items = (history || []).slice().sort((a, b) => String(b.at || "").localeCompare(String(a.at || "")));
    $("model-history").replaceChildren(...items.map(historyItem));
    $("history-empty").hidden = items.length > 0;
  }

  function markChange(previous, version) {
    $("model-announce").textContent = "Model changed: now serving " + version + " (was " + previous + ").";
    const panel = $("model-panel");
    panel.classList.remove("changed");
    void panel.offsetWidth; // restart the highlight animation
    panel.classList.add("changed");
    $("model-changed").hidden = false;
    clearTimeout(changeTimer);
    changeTimer = setTimeout(() => {
      panel.classList.remove("changed");
      $("model-changed").hidden = true;
    }, 10000);
  }

  const TRIGGERS = {
    event: "new data",
    cron: "the schedule",
    force: "a forced retrain",
    reconcile: "a catch-up run",
    manual: "a manual run",
  };

  function renderTrigger(lineage) {
    const delay = lineage.data_to_publish_s;
    const what = TRIGGERS[lineage.trigger] || lineage.trigger || "—";
    const after = typeof delay === "number" ? ", published " + delay.toFixed(1) + " s after its newest file" : "";
    $("model-trigger").textContent = what + after;
  }

  function renderFiles(lineage) {
    const objects = lineage.data_objects || [];
    const items = objects.map((object) => {
      const cut = object.lastIndexOf("#");
      const item = document.createElement("li");
      const name = document.createElement("code");
      name.textContent = cut > 0 ? object.slice(0, cut) : object;
      item.title = cut > 0 ? "generation " + object.slice(cut + 1) : "";
      item.append(name);
      return item;
    });
    const more = (lineage.data_objects_total || 0) - objects.length;
    if (more > 0) {
      const item = document.createElement("li");
      item.textContent = "and " + more.toLocaleString() + " older " + (more === 1 ? "file" : "files");
      items.push(item);
    }
    if (!items.length) items.push(Object.assign(document.createElement("li"), { textContent: "—" }));
    $("model-files").replaceChildren(...items);
  }

  // "98.0% on set <version>: setosa 100%, versicolor 94%, virginica 96%" (recall by class), or "—".
  function renderEvaluation(evaluation) {
    if (!evaluation || typeof evaluation.accuracy !== "number") return "—";
    const recall = Object.entries(evaluation.recall || {}).map(([name, value]) => name + " " + percent(value));
    return percent(evaluation.accuracy) + " on set " + evaluation.set + (recall.length ? ": " + recall.join(", ") : "");
  }

  function renderModel(info) {
    const lineage = info.lineage || info.model || {};
    const version = info.version || info.model_version || lineage.version || null;
    if (!version || info.ready === false) {
      $("model-status").textContent = "No model is loaded yet; the service is waiting for one.";
      if (!sample) $("scatter-status").textContent = "No model is loaded yet.";
      $("model-facts").hidden = true;
    } else {
      $("model-status").textContent = "";
      $("model-facts").hidden = false;
      $("model-version").textContent = version;
      $("model-created").replaceChildren(timeNode(lineage.created_at));
      const trigger = info.loaded_trigger || info.trigger;
      $("model-loaded").replaceChildren(timeNode(info.loaded_at), trigger ? " via " + trigger : "");
      $("model-accuracy").textContent = metric(lineage.metrics, "accuracy");
      $("model-f1").textContent = metric(lineage.metrics, "f1_macro", "f1");
      $("model-evaluation").textContent = renderEvaluation(lineage.evaluation);
      const rows = lineage.row_count;
      const fed = lineage.feedback_rows;
      const fromFeedback = typeof fed === "number" && fed > 0 ? ` (${fed.toLocaleString()} from feedback)` : "";
      $("model-rows").textContent = typeof rows === "number" ? rows.toLocaleString() + (rows === 1 ? " row" : " rows") + fromFeedback : "—";
      renderTrigger(lineage);
      renderFiles(lineage);
      // A zero-width space after each "+" lets a long pipeline name wrap between its steps.
      $("model-type").textContent = (lineage.model_type || "—").replaceAll("+", "+\u200b");
      $("model-pinned").textContent = info.pinned ? "yes, to " + info.pinned : "no";
      $("model-live").textContent = liveAccuracy(info.live_accuracy);
      if (version !== sampleVersion) loadSample(version);
      if (shownVersion !== null && shownVersion !== version) markChange(shownVersion, version);
      shownVersion = version;
    }
    renderHistory(info.history);
  }

  function liveAccuracy(live) {
    if (!live || typeof live.total !== "number" || live.total <= 0) return "— (no feedback yet)";
    const share = typeof live.correct === "number" ? live.correct / live.total : live.accuracy; // unrounded
    return percent(share) + " (" + live.correct + " of " + live.total.toLocaleString() + " labelled)";
  }

  // ---- the petal scatter ----------------------------------------------------------------------

  let sample = null; // {version, classes, points} of the serving model, or {points: []} when it carries none
  let sampleVersion = null;
  let visitor = null;

  function drawScatter() {
    const figure = $("scatter-figure");
    if (!sample) return;
    figure.hidden = sample.points.length === 0 && !visitor;
    if (figure.hidden) return;
    const summary = charts.scatter($("scatter"), { points: sample.points, classes: config.classes, visitor });
    $("scatter").setAttribute("aria-label", summary);
    const rows = sample.points.length;
    $("scatter-note").textContent = rows
      ? rows.toLocaleString() + " rows the model " + sample.version + " was fitted on (evenly spaced)."
      : "";
  }

  async function loadSample(version) {
    sampleVersion = version;
    const status = $("scatter-status");
    try {
      const response = await fetch(SAMPLE_URL, { headers: { Accept: "application/json" }, cache: "no-store" });
      const body = await response.json().catch(() => null);
      if (response.ok && body && Array.isArray(body.points)) {
        sample = { version: body.version, points: body.points };
        status.textContent = "";
        status.hidden = true;
      } else {
        sample = { version, points: [] };
        status.hidden = false;
        status.textContent = response.status === 404
          ? "The serving model carries no training data to show: it was trained before models kept a sample of it."
          : "Training data unavailable: " + ((body && body.error && body.error.message) || "HTTP " + response.status) + ".";
      }
    } catch (err) {
      sampleVersion = null; // try again on the next poll
      status.hidden = false;
      status.textContent = "Training data unavailable (retrying).";
      return;
    }
    drawScatter();
  }

  function placeVisitor(instance, species) {
    const length = instance.petal_length, width = instance.petal_width;
    if (typeof length !== "number" || typeof width !== "number") return;
    visitor = { length, width, species };
    drawScatter();
  }

  for (const item of $("scatter-legend").children) {
    const index = config.classes.indexOf(item.dataset.species);
    const shape = index >= 0 ? charts.SHAPES[index % charts.SHAPES.length] : "star";
    item.querySelector("svg").append(charts.marker(shape, 8, 8.5, index >= 0 ? 5 : 7.5, {}));
  }

  // ---- operators: live accuracy and drift -----------------------------------------------------

  const VERSION_COLOURS = ["#1f5fbf", "#b35c00", "#7a3fa0", "#1d6b35", "#a3214f", "#4f5b6d"];
  const MAX_VERSIONS = VERSION_COLOURS.length;
  let monitoringTimer = null;
  const DRIFT_EMPTY = $("drift-empty").textContent.replace(/\s+/g, " ").trim();

  function featureLabel(name) {
    const words = String(name).replace(/_/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  function renderAccuracy(accuracy, serving) {
    const all = Object.entries((accuracy && accuracy.versions) || {}).sort(([a], [b]) => a.localeCompare(b));
    const shown = all.slice(-MAX_VERSIONS).map(([version, figures], index) => ({
      version,
      colour: VERSION_COLOURS[index],
      series: Array.isArray(figures && figures.series) ? figures.series : [],
      offline: (figures && figures.offline) || {},
      correct: figures && figures.correct,
      total: figures && figures.total,
    }));
    const anyLive = shown.some((v) => v.series.some((p) => p.total > 0));
    $("accuracy-empty").hidden = anyLive;
    $("accuracy-figure").hidden = !anyLive;
    if (!anyLive) return;
    $("accuracy-chart").setAttribute("aria-label", charts.accuracy($("accuracy-chart"), shown));
    const items = shown.map((v) => {
      const facts = [];
      if (typeof v.total === "number" && v.total > 0) facts.push("live " + percent(v.correct / v.total) + " (" + v.correct + " of " + v.total + ")");
      if (typeof v.offline.accuracy === "number") facts.push("held-out " + percent(v.offline.accuracy));
      if (typeof v.offline.evaluation === "number") facts.push("evaluation set " + percent(v.offline.evaluation));
      if (typeof v.offline.accuracy_floor === "number") facts.push("floor " + percent(v.offline.accuracy_floor));
      return el("li", { class: "version-item", "data-version": v.version },
        el("span", { class: "line-key", style: "background: " + v.colour, "aria-hidden": "true" }),
        el("code", {}, v.version), v.version === serving ? el("span", { class: "badge serving" }, "serving") : null,
        el("span", { class: "version-facts" }, facts.join(" · ") || "no figures"));
    });
    if (all.length > shown.length) items.push(el("li", { class: "muted" }, "and " + (all.length - shown.length) + " older versions"));
    $("accuracy-versions").replaceChildren(...items);
  }

  function renderDrift(drift) {
    const features = (drift && drift.features) || {};
    const names = Object.keys(features);
    const order = config.features.filter((n) => n in features).concat(names.filter((n) => !config.features.includes(n)).sort());
    const rows = order.map((name) => ({ feature: name, label: featureLabel(name), ...features[name] }));
    const scored = rows.some((row) => typeof row.score === "number");
    const empty = $("drift-empty");
    empty.hidden = scored;
    $("drift-figure").hidden = !scored;
    if (!scored) {
      const few = rows.length && typeof drift.window_rows === "number";
      empty.textContent = few
        ? "No drift figures yet: the window holds " + drift.window_rows.toLocaleString() +
          " served rows, too few to compare with the training data."
        : DRIFT_EMPTY;
      return;
    }
    $("drift-chart").setAttribute("aria-label", charts.drift($("drift-chart"), rows));
    const windowRows = typeof drift.window_rows === "number" ? drift.window_rows.toLocaleString() : "?";
    $("drift-caption").replaceChildren(
      "Window of the newest " + windowRows + " served rows against the training data of model ",
      el("code", {}, drift.version || "—"), "; updated ", timeNode(drift.updated),
      ". Jensen-Shannon distance for each measurement, L-infinity for the predicted-class mix; the dark mark on each" +
        " row is its threshold, red bars have drifted.",
    );
  }

  let shownMonitoring = null;

  function renderMonitoring() {
    if (!shownMonitoring) return;
    renderAccuracy(shownMonitoring.accuracy, shownMonitoring.version);
    renderDrift(shownMonitoring.drift);
  }

  async function loadMonitoring() {
    const status = $("operators-status");
    try {
      const response = await fetch(MONITORING_URL, { headers: { Accept: "application/json" }, cache: "no-store" });
      const body = await response.json().catch(() => null);
      const usable = response.ok && body && typeof body === "object" && !body.error;
      shownMonitoring = usable ? body : {};
      renderMonitoring();
      status.hidden = usable || response.status === 404;
      status.textContent = usable || response.status === 404 ? "" : "Monitoring figures unavailable (HTTP " + response.status + ").";
    } catch (err) {
      status.hidden = false;
      status.textContent = "Monitoring figures unavailable (retrying).";
    }
  }

  function followMonitoring() {
    clearInterval(monitoringTimer);
    if (!$("operators").open) return;
    loadMonitoring();
    monitoringTimer = setInterval(loadMonitoring, MONITORING_POLL_MS);
  }

  $("operators").addEventListener("toggle", followMonitoring);
  followMonitoring();

  // The charts are drawn at the width they are shown (their text stays legible): again when that changes.
  let resizeTimer = null;
  let drawnWidth = window.innerWidth;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (window.innerWidth === drawnWidth) return;
      drawnWidth = window.innerWidth;
      drawScatter();
      renderMonitoring();
    }, 150);
  });

  async function poll() {
    try {
      const response = await fetch(MODEL_URL, { headers: { Accept: "application/json" }, cache: "no-store" });
      const body = await response.json().catch(() => null);
      if (body && !body.error) renderModel(body);
      else $("model-status").textContent = (body && body.error && body.error.message) || "Model information unavailable.";
    } catch (err) {
      $("model-status").textContent = "Model information unavailable (retrying).";
    } finally {
      setTimeout(poll, config.poll_ms);
    }
  }

  poll();
})();
