// Charts from the stats API (GET /v1/logs/T/L/stats), drawn with uPlot.
import uPlot from "../vendor/uplot/uPlot.esm.js";

const PALETTE = ["#2563eb", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d", "#7c3aed", "#0d9488"];
const FAILURE = /^(fail|failure|failed|denied|deny|error|rejected|forbidden)$/i;

function seconds(iso) {
  return Math.floor(Date.parse(iso) / 1000);
}

const STEP = { "1m": 60, "5m": 300, "1h": 3600, "1d": 86400 };

// The API leaves out buckets without entries: put them back as zeros over the
// whole range asked for, so that a quiet hour is drawn as quiet, not as a
// straight line between the busy ones.
export function dense(stats) {
  const step = STEP[stats.bucket];
  if (!step) return stats.buckets;
  const got = new Map(stats.buckets.map((b) => [seconds(b.start), b]));
  const out = [];
  const end = seconds(stats.to);
  for (let t = Math.floor(seconds(stats.from) / step) * step; t < end; t += step) {
    out.push(got.get(t) || { start: new Date(t * 1000).toISOString(), total: 0, counts: {} });
  }
  return out;
}

// Stacked series: each group's area sits on the ones before it; the legend
// shows each group's own count.
export function stackedChart(el, stats, width) {
  const groups = stats.group_by ? stats.groups : ["entries"];
  const buckets = dense(stats);
  const xs = buckets.map((b) => seconds(b.start));
  const own = groups.map((g) => buckets.map((b) => (stats.group_by ? b.counts[g] || 0 : b.total)));
  // failures on top (drawn last), so they stand out
  const order = groups.map((g, i) => i).sort((a, b) => FAILURE.test(groups[a]) - FAILURE.test(groups[b]));
  const stacked = [];
  let acc = xs.map(() => 0);
  for (const i of order) {
    acc = acc.map((v, j) => v + own[i][j]);
    stacked.push({ i, data: acc });
  }
  // draw the biggest first so each smaller area stays visible above it
  stacked.reverse();
  let colour = 0;
  const colours = groups.map((g) => (FAILURE.test(g) ? "#dc2626" : PALETTE[colour++ % PALETTE.length]));
  const series = [
    {},
    ...stacked.map(({ i }) => ({
      label: groups[i],
      stroke: colours[i],
      fill: `${colours[i]}${FAILURE.test(groups[i]) ? "cc" : "55"}`,
      width: FAILURE.test(groups[i]) ? 2 : 1,
      value: (u, v, si, idx) => (idx === null || idx === undefined ? "—" : own[stacked[si - 1].i][idx]),
    })),
  ];
  const opts = {
    width: width || Math.max(280, el.clientWidth || 600),
    height: 220,
    series,
    axes: [{}, { label: "entries" }],
    scales: { x: { time: true } },
    cursor: { drag: { x: false, y: false } },
  };
  el.replaceChildren();
  el.dataset.buckets = String(xs.length);
  return new uPlot(opts, [xs, ...stacked.map((s) => s.data)], el);
}

export function sparkline(el, stats) {
  const buckets = dense(stats);
  const xs = buckets.map((b) => seconds(b.start));
  const ys = buckets.map((b) => b.total);
  el.replaceChildren();
  el.dataset.buckets = String(xs.length);
  el.setAttribute("title", `${ys.reduce((a, b) => a + b, 0)} entries in the last hour`);
  return new uPlot(
    {
      width: 120,
      height: 32,
      legend: { show: false },
      cursor: { show: false },
      axes: [{ show: false }, { show: false }],
      scales: { x: { time: true } },
      series: [{}, { stroke: "#2563eb", fill: "#2563eb33", width: 1 }],
    },
    [xs, ys],
    el,
  );
}
