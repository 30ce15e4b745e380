'use strict';
// A log-bucketed latency histogram (1 % wide buckets from 10 µs to ~2 min): cheap to
// record into, mergeable across processes by adding bucket counts, percentiles within 1 %.

const MIN_MS = 0.01;
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
const NBUCKETS = Math.ceil(Math.log(120000 / MIN_MS) / LOG_GROWTH) + 2;

class Hist {
  constructor() {
    this.counts = new Uint32Array(NBUCKETS);
    this.n = 0;
    this.max = 0;
    this.sum = 0;
  }
  add(ms) {
    if (!(ms >= 0)) ms = 0;
    const i = ms <= MIN_MS ? 0 : Math.min(NBUCKETS - 1, 1 + Math.floor(Math.log(ms / MIN_MS) / LOG_GROWTH));
    this.counts[i]++;
    this.n++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }
  // Sparse form for the wire: {n, max, sum, b: [[index, count], ...]}.
  toJSON() {
    const b = [];
    for (let i = 0; i < NBUCKETS; i++) if (this.counts[i]) b.push([i, this.counts[i]]);
    return { n: this.n, max: this.max, sum: this.sum, b };
  }
}

module.exports = { Hist, MIN_MS, GROWTH, NBUCKETS };
