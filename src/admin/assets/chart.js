// Line charts drawn as inline SVG: a title, a y axis scaled to the data,
// one path per series, and a legend of the series that are not all zero.
// No library: the dashboard is served by the hub, offline.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 420;
const HEIGHT = 150;
const LEFT = 46;
const RIGHT = 8;
const TOP = 8;
const BOTTOM = 20;

function svg(name, attributes = {}) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  return element;
}

/** A round upper bound above `value`: 1, 2 or 5 times a power of ten. */
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

/** A short form of a number: 1.2k, 3.4M. */
export function short(value) {
  const abs = Math.abs(value);
  if (abs >= 1e9) return (value / 1e9).toFixed(abs >= 1e10 ? 0 : 1) + "G";
  if (abs >= 1e6) return (value / 1e6).toFixed(abs >= 1e7 ? 0 : 1) + "M";
  if (abs >= 1e3) return (value / 1e3).toFixed(abs >= 1e4 ? 0 : 1) + "k";
  if (Number.isInteger(value)) return String(value);
  return value.toFixed(abs >= 10 ? 0 : 1);
}

/** One chart, drawn again with each `draw`. */
export class Chart {
  constructor(parent, title, unit) {
    this.figure = document.createElement("figure");
    this.figure.className = "chart";
    const caption = document.createElement("figcaption");
    caption.textContent = unit ? `${title} (${unit})` : title;
    this.svg = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": title });
    this.svg.classList.add("chart");
    this.legend = document.createElement("ul");
    this.legend.className = "legend";
    this.figure.append(caption, this.svg, this.legend);
    parent.append(this.figure);
  }

  /**
   * Draws `lines` ({label, values, index}) over `span` seconds, the last
   * value at the right edge, each `step` seconds apart.
   */
  draw(lines, { step, span }) {
    const plotWidth = WIDTH - LEFT - RIGHT;
    const plotHeight = HEIGHT - TOP - BOTTOM;
    let max = 0;
    for (const line of lines) for (const value of line.values) max = Math.max(max, value);
    const top = niceMax(max);
    const x = (i, count) => LEFT + plotWidth - ((count - 1 - i) * step * plotWidth) / span;
    const y = (value) => TOP + plotHeight - (value / top) * plotHeight;
    this.svg.replaceChildren();
    for (const fraction of [0, 0.5, 1]) {
      const at = y(top * fraction);
      this.svg.append(svg("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: at, y2: at, class: "grid" }));
      const label = svg("text", { x: LEFT - 4, y: at + 4, class: "axis", "text-anchor": "end" });
      label.textContent = short(top * fraction);
      this.svg.append(label);
    }
    const minutes = span / 60;
    for (const [text, position, anchor] of [
      [`-${minutes >= 1 ? minutes + " min" : span + " s"}`, LEFT, "start"],
      ["now", WIDTH - RIGHT, "end"],
    ]) {
      const label = svg("text", { x: position, y: HEIGHT - 5, class: "axis", "text-anchor": anchor });
      label.textContent = text;
      this.svg.append(label);
    }
    this.legend.replaceChildren();
    for (const line of lines) {
      const count = line.values.length;
      const points = [];
      line.values.forEach((value, i) => {
        const px = x(i, count);
        if (px >= LEFT - 0.5) points.push(`${px.toFixed(1)},${y(value).toFixed(1)}`);
      });
      if (points.length === 1) points.push(points[0].replace(/^[^,]+/, String(WIDTH - RIGHT)));
      if (points.length > 0) {
        this.svg.append(svg("path", { d: "M" + points.join("L"), class: `line s${line.index % 8}` }));
      }
      const last = count ? line.values[count - 1] : 0;
      if (line.values.some((v) => v > 0) || lines.length <= 4) {
        const item = document.createElement("li");
        item.className = `s${line.index % 8}`;
        item.textContent = `${line.label} ${short(last)}`;
        item.title = line.help || "";
        this.legend.append(item);
      }
    }
    if (!this.legend.children.length) {
      const item = document.createElement("li");
      item.className = "quiet";
      item.textContent = "all zero";
      this.legend.append(item);
    }
  }
}
