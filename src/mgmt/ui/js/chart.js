/* Rates over time on a canvas, drawn by hand: a few dozen lines instead of a vendored
 * charting library. A chart keeps the last SAMPLES samples of each series (five minutes at the
 * 5 s refresh, as RabbitMQ's default chart range). */
'use strict';

class RateChart {
  /* series: [{key: dotted path in the sampled object, label, color}]; fmt: how the legend
   * shows a value (rates by default). */
  constructor(series, fmt) {
    this.SAMPLES = 60;
    this.series = series;
    this.fmt = fmt || dom.fmtRate;
    this.points = []; /* [{t: ms, v: [value per series]}], oldest first */
    this.canvas = dom.el('canvas', { class: 'chart', height: 160, 'aria-label': 'rates chart' });
    this.legend = dom.el('ul', { class: 'legend' });
    this.element = dom.el('div', { class: 'chart-box' }, this.canvas, this.legend);
  }

  /* Takes one sample of obj (an API reply) and redraws. */
  add(obj) {
    this.points.push({
      t: Date.now(),
      v: this.series.map(function (s) { return Number(dom.pick(obj, s.key)) || 0; }),
    });
    if (this.points.length > this.SAMPLES) this.points.shift();
    this.draw();
  }

  /* The smallest of 1, 2 or 5 times a power of ten that is at least v: the y axis top. */
  static niceMax(v) {
    if (v <= 1) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    return [1, 2, 5, 10].map(function (m) { return m * p; }).find(function (n) { return n >= v; });
  }

  draw() {
    /* Sized to its box at the screen's pixel density, so that lines stay sharp. */
    const ratio = window.devicePixelRatio || 1;
    const w = this.canvas.clientWidth || 600;
    const h = this.canvas.clientHeight || 160;
    this.canvas.width = Math.round(w * ratio);
    this.canvas.height = Math.round(h * ratio);
    const g = this.canvas.getContext('2d');
    g.scale(ratio, ratio);
    g.clearRect(0, 0, w, h);
    const left = 48, top = 8, plotW = w - left - 8, plotH = h - top - 20;
    const all = this.points.flatMap(function (p) { return p.v; });
    const max = RateChart.niceMax(Math.max.apply(null, all.concat([0])));
    this.drawGrid(g, left, top, plotW, plotH, max);
    const span = (this.SAMPLES - 1) * 5000;
    const now = this.points.length ? this.points[this.points.length - 1].t : 0;
    const self = this;
    this.series.forEach(function (s, i) {
      g.strokeStyle = s.color;
      g.lineWidth = 2;
      g.beginPath();
      self.points.forEach(function (p, j) {
        const x = left + plotW - ((now - p.t) / span) * plotW;
        const y = top + plotH - (p.v[i] / max) * plotH;
        if (j === 0) g.moveTo(Math.max(x, left), y);
        else g.lineTo(Math.max(x, left), y);
      });
      g.stroke();
      /* The latest value as a dot: visible even while there is only one sample. */
      const last = self.points[self.points.length - 1];
      if (last) {
        g.fillStyle = s.color;
        g.beginPath();
        g.arc(left + plotW, top + plotH - (last.v[i] / max) * plotH, 3, 0, 2 * Math.PI);
        g.fill();
      }
    });
    this.drawLegend();
  }

  drawGrid(g, left, top, plotW, plotH, max) {
    g.strokeStyle = '#ddd';
    g.fillStyle = '#666';
    g.lineWidth = 1;
    g.font = '11px sans-serif';
    g.textAlign = 'right';
    for (let i = 0; i <= 4; i++) {
      const y = Math.round(top + plotH - (i / 4) * plotH) + 0.5;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(left + plotW, y);
      g.stroke();
      g.fillText(String(+((max * i) / 4).toPrecision(3)), left - 4, y + 4);
    }
    g.textAlign = 'left';
    g.fillText('-5 min', left, top + plotH + 14);
    g.textAlign = 'right';
    g.fillText('now', left + plotW, top + plotH + 14);
  }

  /* Each series' colour, name and latest value. */
  drawLegend() {
    const last = this.points[this.points.length - 1];
    const fmt = this.fmt;
    this.legend.replaceChildren.apply(this.legend, this.series.map(function (s, i) {
      const swatch = dom.el('span', { class: 'swatch' });
      swatch.style.background = s.color; /* CSSOM: allowed by the style-src 'self' policy */
      return dom.el('li', null, swatch, s.label + ' ', dom.el('b', null, last ? fmt(last.v[i]) : ''));
    }));
  }
}

/* The message rates most pages chart, in RabbitMQ's colours. */
RateChart.MESSAGE_RATES = [
  { key: 'message_stats.publish_details.rate', label: 'Publish', color: '#edc240' },
  { key: 'message_stats.deliver_get_details.rate', label: 'Deliver / get', color: '#afd8f8' },
  { key: 'message_stats.ack_details.rate', label: 'Ack', color: '#cb4b4b' },
  { key: 'message_stats.redeliver_details.rate', label: 'Redeliver', color: '#4da74d' },
];

/* Messages in queues, in RabbitMQ's colours. */
RateChart.QUEUED = [
  { key: 'messages_ready', label: 'Ready', color: '#edc240' },
  { key: 'messages_unacknowledged', label: 'Unacked', color: '#afd8f8' },
  { key: 'messages', label: 'Total', color: '#cb4b4b' },
];
