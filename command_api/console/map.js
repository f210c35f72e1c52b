// A map drawn in SVG with the Web Mercator projection: positions and paths need no tile server.
// Tiles (OpenStreetMap or any {z}/{x}/{y} URL) are drawn underneath only when one is configured.

const SVG = "http://www.w3.org/2000/svg";
const TILE = 256;
const MAX_ZOOM = 17;

function project(lat, lon, zoom) {
  const size = TILE * 2 ** zoom;
  const sin = Math.min(Math.max(Math.sin((lat * Math.PI) / 180), -0.9999), 0.9999);
  return [((lon + 180) / 360) * size, (0.5 - Math.log((1 + sin) / (1 - sin)) / (4 * Math.PI)) * size];
}

function unproject(x, y, zoom) {
  const size = TILE * 2 ** zoom;
  const lon = (x / size) * 360 - 180;
  const n = Math.PI - (2 * Math.PI * y) / size;
  return [(180 / Math.PI) * Math.atan(Math.sinh(n)), lon];
}

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function niceStep(span) {
  const raw = span / 4;
  const pow = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw);
}

export class SvgMap {
  constructor(container, { tileUrl = null, attribution = null, onSelect = null } = {}) {
    this.tileUrl = tileUrl;
    this.attribution = attribution;
    this.onSelect = onSelect;
    this.svg = el("svg", { class: "map", role: "img", "aria-label": "map" });
    container.appendChild(this.svg);
    this.points = [];
    this.path = [];
    new ResizeObserver(() => this.draw()).observe(this.svg);
  }

  setPoints(points) {
    this.points = points.filter((p) => Number.isFinite(p.lat) && Number.isFinite(p.lon));
    this.draw();
  }

  setPath(path) {
    this.path = path.filter(([lat, lon]) => Number.isFinite(lat) && Number.isFinite(lon));
    this.draw();
  }

  view(width, height) {
    const all = [...this.points.map((p) => [p.lat, p.lon]), ...this.path];
    if (!all.length) return { zoom: 2, cx: TILE * 2, cy: TILE * 1.6 };
    let zoom = MAX_ZOOM;
    for (; zoom > 1; zoom--) {
      const xy = all.map(([lat, lon]) => project(lat, lon, zoom));
      const w = Math.max(...xy.map((p) => p[0])) - Math.min(...xy.map((p) => p[0]));
      const h = Math.max(...xy.map((p) => p[1])) - Math.min(...xy.map((p) => p[1]));
      if (w <= width * 0.8 && h <= height * 0.8) break;
    }
    if (all.length === 1 || this.path.length === 0) zoom = Math.min(zoom, 14);
    const xy = all.map(([lat, lon]) => project(lat, lon, zoom));
    const cx = (Math.max(...xy.map((p) => p[0])) + Math.min(...xy.map((p) => p[0]))) / 2;
    const cy = (Math.max(...xy.map((p) => p[1])) + Math.min(...xy.map((p) => p[1]))) / 2;
    return { zoom, cx, cy };
  }

  draw() {
    const width = this.svg.clientWidth || 600;
    const height = this.svg.clientHeight || 400;
    const { zoom, cx, cy } = this.view(width, height);
    const x0 = cx - width / 2;
    const y0 = cy - height / 2;
    this.svg.setAttribute("viewBox", `${x0} ${y0} ${width} ${height}`);
    this.svg.replaceChildren();
    if (this.tileUrl) this.drawTiles(zoom, x0, y0, width, height);
    else this.drawGraticule(zoom, x0, y0, width, height);
    if (this.path.length > 1) {
      const points = this.path.map(([lat, lon]) => project(lat, lon, zoom).join(",")).join(" ");
      el("polyline", { class: "path", points }, this.svg);
      const [sx, sy] = project(...this.path[0], zoom);
      const [ex, ey] = project(...this.path[this.path.length - 1], zoom);
      el("circle", { cx: sx, cy: sy, r: 5, fill: "#1a7f37" }, this.svg);
      el("circle", { cx: ex, cy: ey, r: 5, fill: "#cf222e" }, this.svg);
    }
    for (const p of this.points) {
      const [x, y] = project(p.lat, p.lon, zoom);
      const g = el("g", { class: "marker", "data-vin": p.id || "" }, this.svg);
      el("circle", { cx: x, cy: y, r: 7, fill: p.color || "#1f6feb" }, g);
      const label = el("text", { x: x + 10, y: y + 4 }, g);
      label.textContent = p.label || "";
      if (x + 10 + label.getComputedTextLength() > x0 + width) {
        // It would run past the right edge: on the marker's left instead.
        label.setAttribute("x", x - 10);
        label.setAttribute("text-anchor", "end");
      }
      if (this.onSelect) {
        g.style.cursor = "pointer";
        g.addEventListener("click", () => this.onSelect(p.id));
      }
    }
    if (this.tileUrl && this.attribution) {
      const text = el("text", { class: "attribution", x: x0 + width - 4, y: y0 + height - 4, "text-anchor": "end" }, this.svg);
      text.textContent = this.attribution;
    }
  }

  drawTiles(zoom, x0, y0, width, height) {
    const count = 2 ** zoom;
    for (let tx = Math.floor(x0 / TILE); tx <= Math.floor((x0 + width) / TILE); tx++) {
      for (let ty = Math.max(0, Math.floor(y0 / TILE)); ty <= Math.min(count - 1, Math.floor((y0 + height) / TILE)); ty++) {
        const wrapped = ((tx % count) + count) % count;
        const href = this.tileUrl.replace("{z}", zoom).replace("{x}", wrapped).replace("{y}", ty);
        el("image", { href, x: tx * TILE, y: ty * TILE, width: TILE, height: TILE }, this.svg);
      }
    }
  }

  drawGraticule(zoom, x0, y0, width, height) {
    const [lat1, lon0] = unproject(x0, y0, zoom);
    const [lat0, lon1] = unproject(x0 + width, y0 + height, zoom);
    const step = niceStep(Math.max(lon1 - lon0, 1e-6));
    const digits = Math.max(0, -Math.floor(Math.log10(step)));
    for (let lon = Math.ceil(lon0 / step) * step; lon < lon1; lon += step) {
      const [x] = project(0, lon, zoom);
      el("line", { class: "grid-line", x1: x, x2: x, y1: y0, y2: y0 + height }, this.svg);
      el("text", { class: "grid-label", x: x + 3, y: y0 + height - 4 }, this.svg).textContent = `${lon.toFixed(digits)}°`;
    }
    for (let lat = Math.ceil(lat0 / step) * step; lat < lat1; lat += step) {
      const [, y] = project(lat, 0, zoom);
      el("line", { class: "grid-line", x1: x0, x2: x0 + width, y1: y, y2: y }, this.svg);
      el("text", { class: "grid-label", x: x0 + 3, y: y - 3 }, this.svg).textContent = `${lat.toFixed(digits)}°`;
    }
  }
}
