// The grid centre's figures as bars (ECharts, shipped in hub/web/static/vendor/echarts).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("chart");
  const table = JSON.parse(el.dataset.figures);
  const labels = el.dataset.labels.split("|");
  const keys = table.rows.map((r) => r.key);
  const pct = (field) => table.rows.map((r) => Math.round(r[field] * 1000) / 10);
  const chart = echarts.init(el, null, { renderer: "canvas" });
  chart.setOption({
    animation: false,
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 40, right: 10, top: 40, bottom: 60 },
    xAxis: { type: "category", data: keys, axisLabel: { rotate: keys.length > 6 ? 45 : 0 } },
    yAxis: { type: "value", max: 100, axisLabel: { formatter: "{value}%" } },
    dataZoom: keys.length > 12 ? [{ type: "slider", start: 0, end: Math.max(5, 1200 / keys.length) }] : [],
    series: [
      { name: labels[0], type: "bar", data: pct("closure_rate") },
      { name: labels[1], type: "bar", data: pct("on_time_rate") },
      { name: labels[2], type: "bar", data: pct("rework_rate") },
    ],
  });
  el.dataset.ready = "1";
  window.addEventListener("resize", () => chart.resize());
});
