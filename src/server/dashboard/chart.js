/**
 * A tiny line chart of ingest rate per topic on a <canvas>: the overview's `rateHistory` (one
 * sample a second, two minutes), one line per topic, with a legend. Drawn by hand so the page
 * needs no library and no network; redrawn in full on each frame (a few hundred points).
 */

/** The span of the x axis: the overview keeps 120 one-second samples (RATE_HISTORY_SAMPLES). */
const WINDOW_MS = 120_000;
/** Room for the y labels on the left and the time labels below, in CSS pixels. */
const PAD = { left: 44, right: 8, top: 8, bottom: 20 };
/** Colours, in order of a topic's first appearance; CSS custom properties so both themes pick theirs. */
const PALETTE_VARS = ['--c1', '--c2', '--c3', '--c4', '--c5', '--c6', '--c7', '--c8'];

export class RateChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {HTMLElement} legend a <ul> the legend items go in
   * @param {(n: number) => string} formatRate how the axis and legend print a rate
   */
  constructor(canvas, legend, formatRate) {
    this.canvas = canvas;
    this.legend = legend;
    this.formatRate = formatRate;
    /** @type {Array<{ atMs: number, topics: Record<string, number> }>} */
    this.history = [];
    /** Topic → palette slot, fixed once seen so a line keeps its colour while topics come and go. */
    this.slots = new Map();
    /** Topic → its legend item's value element. */
    this.legendValues = new Map();
    this.theme = readTheme();
    new ResizeObserver(() => this.resize()).observe(canvas);
    matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
      this.theme = readTheme();
      this.legendValues.clear();
      this.draw();
    });
  }

  /** Takes the latest history and redraws. */
  update(history) {
    this.history = history;
    this.draw();
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const width = Math.round(this.canvas.clientWidth * dpr);
    const height = Math.round(this.canvas.clientHeight * dpr);
    if (width === this.canvas.width && height === this.canvas.height) return;
    this.canvas.width = width;
    this.canvas.height = height;
    this.draw();
  }

  topics() {
    const names = new Set();
    for (const sample of this.history) for (const name of Object.keys(sample.topics)) names.add(name);
    // Device topics first, alphabetically; internal ones (`_deadletter`) after them.
    const sorted = [...names].sort((a, b) => Number(a.startsWith('_')) - Number(b.startsWith('_')) || a.localeCompare(b));
    for (const name of sorted) if (!this.slots.has(name)) this.slots.set(name, this.slots.size % PALETTE_VARS.length);
    return sorted;
  }

  colour(name) {
    return this.theme.palette[this.slots.get(name) ?? 0];
  }

  draw() {
    const { canvas } = this;
    const ctx = canvas.getContext('2d');
    if (ctx === null || canvas.width === 0) return;
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.width / dpr;
    const height = canvas.height / dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = `11px ${this.theme.font}`;
    const topics = this.topics();
    this.renderLegend(topics);
    const last = this.history.at(-1);
    if (last === undefined) {
      ctx.fillStyle = this.theme.muted;
      ctx.textAlign = 'center';
      ctx.fillText('collecting samples…', width / 2, height / 2);
      return;
    }
    let max = 0;
    for (const sample of this.history) for (const rate of Object.values(sample.topics)) max = Math.max(max, rate);
    const top = niceCeiling(max);
    const plotW = width - PAD.left - PAD.right;
    const plotH = height - PAD.top - PAD.bottom;
    const x = (atMs) => PAD.left + plotW * (1 - (last.atMs - atMs) / WINDOW_MS);
    const y = (rate) => PAD.top + plotH * (1 - rate / top);

    ctx.lineWidth = 1;
    ctx.strokeStyle = this.theme.grid;
    ctx.fillStyle = this.theme.muted;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const fraction of [0, 0.5, 1]) {
      const gy = Math.round(y(top * fraction)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(PAD.left, gy);
      ctx.lineTo(width - PAD.right, gy);
      ctx.stroke();
      ctx.fillText(this.formatRate(top * fraction), PAD.left - 6, gy);
    }
    ctx.textBaseline = 'alphabetic';
    for (const [ago, label] of [[120_000, '−2 min'], [60_000, '−1 min'], [0, 'now']]) {
      ctx.textAlign = ago === 0 ? 'right' : ago === WINDOW_MS ? 'left' : 'center';
      ctx.fillText(label, x(last.atMs - ago), height - 5);
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(PAD.left, 0, plotW + PAD.right, height);
    ctx.clip();
    ctx.lineWidth = 1.75;
    ctx.lineJoin = 'round';
    ctx.lineCap = 'round';
    for (const name of topics) {
      ctx.strokeStyle = this.colour(name);
      ctx.beginPath();
      let started = false;
      let end = null;
      for (const sample of this.history) {
        const rate = sample.topics[name];
        if (rate === undefined) {
          started = false;
          continue;
        }
        if (started) ctx.lineTo(x(sample.atMs), y(rate));
        else ctx.moveTo(x(sample.atMs), y(rate));
        started = true;
        end = [x(sample.atMs), y(rate)];
      }
      ctx.stroke();
      // A dot on the latest value: where each line is now, and visible while there is one sample.
      if (end !== null) {
        ctx.fillStyle = ctx.strokeStyle;
        ctx.beginPath();
        ctx.arc(end[0], end[1], 2.5, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
    ctx.restore();
  }

  /** One item per topic: its colour, name and latest rate. Rebuilt only when the topics change. */
  renderLegend(topics) {
    const latest = this.history.at(-1)?.topics ?? {};
    if (topics.length !== this.legendValues.size || topics.some((t) => !this.legendValues.has(t))) {
      this.legend.replaceChildren();
      this.legendValues.clear();
      for (const name of topics) {
        const item = document.createElement('li');
        const swatch = document.createElement('span');
        swatch.className = 'swatch';
        swatch.style.backgroundColor = this.colour(name);
        const label = document.createElement('span');
        label.textContent = name;
        const value = document.createElement('span');
        value.className = 'legend-value';
        item.append(swatch, label, value);
        this.legend.append(item);
        this.legendValues.set(name, value);
      }
    }
    for (const [name, value] of this.legendValues) {
      const text = `${this.formatRate(latest[name] ?? 0)}/s`;
      if (value.textContent !== text) value.textContent = text;
    }
  }
}

/** The smallest of 1, 2, 2.5, 5 × 10^n at or above `n` (at least 1): round axis labels. */
function niceCeiling(n) {
  if (!(n > 1)) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= n) return step * power;
  return 10 * power;
}

function readTheme() {
  const style = getComputedStyle(document.documentElement);
  const v = (name) => style.getPropertyValue(name).trim();
  return { palette: PALETTE_VARS.map(v), grid: v('--line'), muted: v('--muted'), font: style.fontFamily };
}
