// The page's charts as plain SVG: the petal scatter, live accuracy over time and the drift bars.
// Each function draws into an <svg> it is given (sized by its viewBox, so it scales to any width) from plain data,
// and returns a one-sentence summary for screen readers. No dependencies; every text is set with textContent.
"use strict";

window.IrisCharts = (function () {
  const NS = "http://www.w3.org/2000/svg";
  const SHAPES = ["circle", "square", "triangle"];

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function text(x, y, content, attrs) {
    const node = svg("text", { x: x.toFixed(1), y: y.toFixed(1), ...attrs });
    node.textContent = content;
    return node;
  }

  function linear(d0, d1, r0, r1) {
    const span = d1 - d0 || 1;
    return (v) => r0 + ((v - d0) / span) * (r1 - r0);
  }

  // A step of 1, 2 or 5 times a power of ten giving about `count` intervals over `span`.
  function niceStep(span, count) {
    const raw = Math.max(span, 1e-9) / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const unit = [1, 2, 5, 10].find((m) => m * power >= raw) || 10;
    return unit * power;
  }

  function ticks(min, max, count) {
    const step = niceStep(max - min, count);
    const first = Math.ceil(min / step - 1e-9) * step;
    const found = [];
    for (let v = first; v <= max + step * 1e-6; v += step) found.push(Math.round(v / step) * step);
    return { values: found, decimals: Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) };
  }

  function niceCeil(value, count) {
    const step = niceStep(value, count);
    return Math.ceil(value / step - 1e-9) * step;
  }

  // The drawing width in CSS pixels (the viewBox is as wide as the chart is shown, so its text stays at its CSS size
  // on a phone and on a desktop), within [min, max]; `max` while the chart is not laid out.
  function widthOf(root, min, max) {
    const shown = root.parentNode ? root.parentNode.getBoundingClientRect().width : 0;
    return Math.round(shown > 0 ? Math.max(min, Math.min(max, shown)) : max);
  }

  // Chart area inside a viewBox of width x height with margins {top, right, bottom, left}.
  function frame(root, width, height, margin) {
    root.setAttribute("viewBox", "0 0 " + width + " " + height);
    root.setAttribute("preserveAspectRatio", "xMidYMid meet");
    root.style.maxWidth = width + "px";
    root.replaceChildren();
    return { x0: margin.left, x1: width - margin.right, y0: height - margin.bottom, y1: margin.top };
  }

  // Gridlines and tick labels of one axis ("x" along the bottom, "y" up the left side).
  function axis(root, area, which, scale, tickSet, format) {
    const group = svg("g", { class: "axis axis-" + which });
    for (const value of tickSet.values) {
      const label = format ? format(value) : value.toFixed(tickSet.decimals);
      if (which === "x") {
        const x = scale(value);
        group.append(svg("line", { class: "grid", x1: x, x2: x, y1: area.y1, y2: area.y0 }));
        group.append(text(x, area.y0 + 16, label, { "text-anchor": "middle" }));
      } else {
        const y = scale(value);
        group.append(svg("line", { class: "grid", x1: area.x0, x2: area.x1, y1: y, y2: y }));
        group.append(text(area.x0 - 6, y + 4, label, { "text-anchor": "end" }));
      }
    }
    group.append(svg("line", { class: "axis-line", x1: area.x0, x2: area.x1, y1: area.y0, y2: area.y0 }));
    group.append(svg("line", { class: "axis-line", x1: area.x0, x2: area.x0, y1: area.y1, y2: area.y0 }));
    root.append(group);
  }

  function axisTitles(root, area, height, xTitle, yTitle) {
    root.append(text((area.x0 + area.x1) / 2, height - 6, xTitle, { class: "axis-title", "text-anchor": "middle" }));
    const y = (area.y0 + area.y1) / 2;
    root.append(text(12, y, yTitle, {
      class: "axis-title", "text-anchor": "middle", transform: "rotate(-90 12 " + y.toFixed(1) + ")",
    }));
  }

  // One marker of shape "circle", "square", "triangle" or "star" centred on (x, y).
  function marker(shape, x, y, size, attrs) {
    if (shape === "circle") return svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: size, ...attrs });
    if (shape === "square") {
      const s = size * 0.9;
      return svg("rect", { x: (x - s).toFixed(1), y: (y - s).toFixed(1), width: 2 * s, height: 2 * s, ...attrs });
    }
    const corners = shape === "triangle" ? 3 : 10;
    const points = [];
    for (let i = 0; i < corners; i++) {
      const angle = -Math.PI / 2 + (i * 2 * Math.PI) / corners;
      const r = shape === "triangle" ? size * 1.25 : i % 2 ? size * 0.45 : size;
      points.push((x + r * Math.cos(angle)).toFixed(1) + "," + (y + r * Math.sin(angle) + (corners === 3 ? size * 0.25 : 0)).toFixed(1));
    }
    return svg("polygon", { points: points.join(" "), ...attrs });
  }

  function range(values) {
    return values.length ? [Math.min(...values), Math.max(...values)] : null;
  }

  function cm(value) {
    return (Math.round(value * 10) / 10).toFixed(1);
  }

  // The petal scatter: training points [length, width, classIndex] coloured and shaped by species, and the
  // visitor's flower {length, width, species} as a star when given.
  function scatter(root, data) {
    const points = data.points || [];
    const visitor = data.visitor || null;
    const width = widthOf(root, 300, 560);
    const height = Math.round(Math.min(380, Math.max(240, width * 0.72)));
    const area = frame(root, width, height, { top: 12, right: 14, bottom: 44, left: 48 });
    const xs = points.map((p) => p[0]).concat(visitor ? [visitor.length] : []);
    const ys = points.map((p) => p[1]).concat(visitor ? [visitor.width] : []);
    const xMax = niceCeil(Math.max(1, ...xs) * 1.04, 6);
    const yMax = niceCeil(Math.max(0.5, ...ys) * 1.04, 5);
    const x = linear(0, xMax, area.x0, area.x1);
    const y = linear(0, yMax, area.y0, area.y1);
    axis(root, area, "x", x, ticks(0, xMax, 6));
    axis(root, area, "y", y, ticks(0, yMax, 6));
    axisTitles(root, area, height, "Petal length (cm)", "Petal width (cm)");
    const groups = data.classes.map((name, index) => svg("g", { class: "species species-" + index, "data-species": name }));
    for (const [length, widthCm, index] of points) {
      const group = groups[index];
      if (!group) continue;
      const dot = marker(SHAPES[index % SHAPES.length], x(length), y(widthCm), 3.4, { class: "point" });
      dot.append(svg("title", {}, data.classes[index] + ": petal " + cm(length) + " × " + cm(widthCm) + " cm"));
      group.append(dot);
    }
    root.append(...groups);
    if (visitor) {
      const vx = x(visitor.length), vy = y(visitor.width);
      const group = svg("g", { class: "visitor" });
      group.append(marker("star", vx, vy, 11, { class: "visitor-halo" }));
      group.append(marker("star", vx, vy, 9, { class: "visitor-star" }));
      const right = vx < (area.x0 + area.x1) / 2;
      const label = text(vx + (right ? 14 : -14), vy - 10, "your flower", {
        class: "visitor-label", "text-anchor": right ? "start" : "end",
      });
      group.append(label);
      root.append(group);
    }
    const parts = data.classes.map((name, index) => {
      const own = points.filter((p) => p[2] === index);
      const lengths = range(own.map((p) => p[0]));
      const widths = range(own.map((p) => p[1]));
      if (!lengths) return name + ": none";
      return name + ": " + own.length + " flowers, petal length " + cm(lengths[0]) + " to " + cm(lengths[1]) +
        " cm, width " + cm(widths[0]) + " to " + cm(widths[1]) + " cm";
    });
    let summary = "Petal length against petal width of " + points.length + " training flowers. " + parts.join("; ") + ".";
    if (visitor) {
      summary += " Your flower: petal length " + cm(visitor.length) + " cm, width " + cm(visitor.width) + " cm" +
        (visitor.species ? ", predicted " + visitor.species : "") + ".";
    }
    return summary;
  }

  function percent(value) {
    return (Math.round(value * 1000) / 10).toFixed(1) + " %";
  }

  function clock(ms, withDate) {
    const when = new Date(ms);
    const time = when.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    return withDate ? when.toLocaleDateString(undefined, { month: "short", day: "numeric" }) + " " + time : time;
  }

  // Each version's live accuracy over time (correct / total per series point) as a line, its offline figures
  // (held-out dashed, evaluation set dotted) over the same span, and each accuracy floor as a red line.
  // `versions`: [{version, colour, series: [{time, correct, total}], offline: {accuracy, evaluation, accuracy_floor}}].
  function accuracy(root, versions) {
    const width = widthOf(root, 300, 860);
    const height = Math.round(Math.min(320, Math.max(240, width * 0.5)));
    const area = frame(root, width, height, { top: 14, right: 30, bottom: 44, left: 52 });
    const lines = versions.map((v) => ({
      ...v,
      points: (v.series || [])
        .filter((p) => p.total > 0 && Number.isFinite(Date.parse(p.time)))
        .map((p) => ({ t: Date.parse(p.time), value: p.correct / p.total, correct: p.correct, total: p.total })),
    }));
    const times = lines.flatMap((l) => l.points.map((p) => p.t));
    let [t0, t1] = range(times) || [Date.now() - 3600e3, Date.now()];
    if (t1 - t0 < 60e3) [t0, t1] = [t0 - 30 * 60e3, t1 + 30 * 60e3];
    const offline = (l) => [l.offline.accuracy, l.offline.evaluation].filter((v) => typeof v === "number");
    const floors = [...new Set(lines.map((l) => l.offline.accuracy_floor).filter((v) => typeof v === "number"))];
    const values = lines.flatMap((l) => l.points.map((p) => p.value).concat(offline(l))).concat(floors);
    const low = Math.max(0, Math.floor(((range(values) || [0.8])[0] - 0.02) * 10) / 10);
    const x = linear(t0, t1, area.x0, area.x1);
    const y = linear(low, 1, area.y0, area.y1);
    const days = new Date(t0).toDateString() !== new Date(t1).toDateString();
    const parts = Math.max(1, Math.min(6, Math.floor((area.x1 - area.x0) / (days ? 120 : 85))));
    const timeTicks = { values: [...Array(parts + 1).keys()].map((i) => t0 + ((t1 - t0) * i) / parts), decimals: 0 };
    axis(root, area, "x", x, timeTicks, (t) => clock(t, days));
    axis(root, area, "y", y, ticks(low, 1, 5), (v) => Math.round(v * 100) + " %");
    axisTitles(root, area, height, "Time (each point: after a feedback pass)", "Accuracy");
    for (const floor of floors) {
      const fy = y(floor);
      root.append(svg("line", { class: "floor-line", x1: area.x0, x2: area.x1, y1: fy, y2: fy }));
      root.append(text(area.x1 - 4, fy - 5, "floor " + percent(floor), { class: "floor-label", "text-anchor": "end" }));
    }
    for (const line of lines) {
      const group = svg("g", { class: "version", "data-version": line.version, style: "--series: " + line.colour });
      const span = range(line.points.map((p) => p.t));
      let [sx0, sx1] = span ? [x(span[0]), x(span[1])] : [area.x0, area.x1];
      if (sx1 - sx0 < 24) [sx0, sx1] = [Math.max(area.x0, sx0 - 12), Math.min(area.x1, sx1 + 12)];
      for (const [kind, value] of [["heldout", line.offline.accuracy], ["evaluation", line.offline.evaluation]]) {
        if (typeof value !== "number") continue;
        const oy = y(value);
        const figure = svg("line", { class: "offline-line " + kind, x1: sx0, x2: sx1, y1: oy, y2: oy });
        figure.append(svg("title", {}, line.version + " " + (kind === "heldout" ? "held-out" : "evaluation set") + ": " + percent(value)));
        group.append(figure);
      }
      if (line.points.length) {
        const path = line.points.map((p, i) => (i ? "L" : "M") + x(p.t).toFixed(1) + " " + y(p.value).toFixed(1)).join(" ");
        group.append(svg("path", { class: "live-line", d: path }));
        for (const p of line.points) {
          const dot = svg("circle", { class: "live-point", cx: x(p.t).toFixed(1), cy: y(p.value).toFixed(1), r: 3.5 });
          dot.append(svg("title", {}, line.version + ": " + percent(p.value) + " (" + p.correct + " of " + p.total + ")"));
          group.append(dot);
        }
      }
      root.append(group);
    }
    const told = lines.map((l) => {
      const last = l.points[l.points.length - 1];
      const live = last ? "live " + percent(last.value) + " (" + last.correct + " of " + last.total + ")" : "no live figure";
      return l.version + ": " + live +
        (typeof l.offline.accuracy === "number" ? ", held-out " + percent(l.offline.accuracy) : "") +
        (typeof l.offline.evaluation === "number" ? ", evaluation set " + percent(l.offline.evaluation) : "");
    });
    return "Live accuracy over time of " + lines.length + (lines.length === 1 ? " model version" : " model versions") +
      (floors.length ? " against the floor of " + floors.map(percent).join(", ") : "") + ". " + told.join("; ") + ".";
  }

  // One bar per feature: its drift score, its threshold as a mark across the bar, drifted ones highlighted.
  // `rows`: [{feature, label, score, threshold, drifted}].
  function drift(root, rows) {
    const width = widthOf(root, 300, 860);
    const narrow = width < 480; // labels above the bars instead of beside them
    const rowHeight = narrow ? 46 : 34;
    const margin = narrow ? { top: 6, right: 14, bottom: 44, left: 14 } : { top: 14, right: 110, bottom: 44, left: 124 };
    const height = margin.top + rows.length * rowHeight + margin.bottom;
    const area = frame(root, width, height, margin);
    const known = rows.filter((r) => typeof r.score === "number");
    const top = Math.max(0.1, ...known.map((r) => r.score), ...rows.map((r) => r.threshold || 0)) * 1.1;
    const xMax = niceCeil(top, 5);
    const x = linear(0, xMax, area.x0, area.x1);
    axis(root, area, "x", x, ticks(0, xMax, narrow ? 4 : 5));
    root.append(text((area.x0 + area.x1) / 2, height - 6, "Distance from the training data (0 = same)", {
      class: "axis-title", "text-anchor": "middle",
    }));
    rows.forEach((row, index) => {
      const rowTop = area.y1 + index * rowHeight;
      const mid = narrow ? rowTop + 31 : rowTop + rowHeight / 2;
      const labelAt = narrow ? [area.x0, rowTop + 15, "start"] : [area.x0 - 8, mid + 4, "end"];
      const valueAt = narrow ? [area.x1, rowTop + 15, "end"] : [area.x1 + 8, mid + 4, "start"];
      const group = svg("g", { class: row.drifted ? "drift-row drifted" : "drift-row", "data-feature": row.feature });
      group.append(text(labelAt[0], labelAt[1], row.label, { class: "drift-label", "text-anchor": labelAt[2] }));
      const scored = typeof row.score === "number";
      const barEnd = scored ? x(Math.min(row.score, xMax)) : area.x0;
      const bar = svg("rect", {
        class: "drift-bar", x: area.x0, y: (mid - 8).toFixed(1), width: Math.max(1, barEnd - area.x0).toFixed(1), height: 16,
      });
      bar.append(svg("title", {}, row.label + ": " + (scored ? row.score.toFixed(3) : "no figure") +
        (typeof row.threshold === "number" ? ", threshold " + row.threshold : "")));
      group.append(bar);
      if (typeof row.threshold === "number") {
        const tx = x(Math.min(row.threshold, xMax));
        group.append(svg("line", { class: "threshold", x1: tx, x2: tx, y1: mid - 12, y2: mid + 12 }));
      }
      const value = scored ? row.score.toFixed(3) + (row.drifted ? " drifted" : "") : "—";
      group.append(text(valueAt[0], valueAt[1], value, { class: "drift-value", "text-anchor": valueAt[2] }));
      root.append(group);
    });
    const drifted = rows.filter((r) => r.drifted).map((r) => r.label);
    return "Drift score per feature against its threshold: " +
      rows.map((r) => r.label + " " + (typeof r.score === "number" ? r.score.toFixed(3) : "no figure") +
        (typeof r.threshold === "number" ? " (threshold " + r.threshold + ")" : "")).join(", ") +
      ". " + (drifted.length ? "Drifted: " + drifted.join(", ") + "." : "None drifted.");
  }

  return { scatter, accuracy, drift, marker, SHAPES };
})();
