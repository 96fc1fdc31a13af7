// The command centre: a live map of the open cases coloured by state (overdue ones ringed),
// a feed that new and changed cases join as the server pushes them (server-sent events from
// /api/v1/cases/stream; the browser reconnects by itself and sends Last-Event-ID, so nothing
// is missed), and the dispatch panel, loaded in place when a case is chosen.
//
// Progressive enhancement: without this module the page still lists the feed and the
// queue, and the panel opens by link. The server passes the open cases and the translated
// words as JSON blocks (#case-points, #command-labels): no inline script, no catalogue here.

const OPEN_STATES = new Set(["reported", "registered", "dispatched", "handling", "handled"]);
const DEADLINE_STATES = new Set(["dispatched", "handling"]);
const STREAM_URL = "/api/v1/cases/stream";
const FALLBACK_CENTRE = [23.13, 113.27];
const FEED_MAX = 200;

function readJson(id, fallback) {
  const node = document.getElementById(id);
  if (!node) {
    return fallback;
  }
  try {
    return JSON.parse(node.textContent);
  } catch {
    return fallback;
  }
}

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, value);
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

const clockFormat = new Intl.DateTimeFormat(document.documentElement.lang || "zh-CN", {
  timeZone: "Asia/Shanghai",
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  hourCycle: "h23",
});

function isOverdue(point, now = Date.now()) {
  if (!DEADLINE_STATES.has(point.state) || !point.deadline_at) {
    return false;
  }
  return Date.parse(point.deadline_at) < now;
}

class CommandCentre {
  constructor() {
    this.labels = readJson("command-labels", {});
    this.points = new Map();
    for (const point of readJson("case-points", [])) {
      this.points.set(point.ref, point);
    }
    this.feed = document.querySelector("[data-feed]");
    this.status = document.querySelector("[data-feed-status]");
    this.mapHost = document.querySelector("[data-case-map]");
    this.markers = new Map();
    this.map = null;
  }

  word(group, key) {
    const table = group ? this.labels[group] || {} : this.labels;
    return table[key] || key;
  }

  // ------------------------------------------------------------------ map

  startMap() {
    const L = window.L;
    if (!L || !this.mapHost) {
      return;
    }
    this.mapHost.replaceChildren();
    this.mapHost.classList.add("map--live");
    this.map = L.map(this.mapHost, { attributionControl: false, zoomSnap: 0.25 });
    const tileUrl = this.mapHost.dataset.tileUrl;
    if (tileUrl) {
      L.tileLayer(tileUrl, { maxZoom: 19 }).addTo(this.map);
    }
    // The view comes first: Leaflet creates a marker's SVG path only once the map has one.
    this.fitMap();
    for (const point of this.points.values()) {
      this.placeMarker(point);
    }
    this.drawStreets();
    this.mapHost.dataset.state = "ready";
  }

  fitMap() {
    const L = window.L;
    const latLngs = [...this.points.values()].map((point) => [point.lat, point.lon]);
    if (latLngs.length) {
      this.map.fitBounds(L.latLngBounds(latLngs).pad(0.2), { maxZoom: 16 });
    } else {
      this.map.setView(FALLBACK_CENTRE, 13);
    }
  }

  async drawStreets() {
    const district = this.mapHost.dataset.district;
    if (!district) {
      return;
    }
    const api = (this.mapHost.dataset.api || "/api/v1").replace(/\/$/, "");
    try {
      const response = await fetch(
        `${api}/territory/${encodeURIComponent(district)}/grids.geojson?level=street`,
        { credentials: "same-origin" },
      );
      if (!response.ok) {
        return;
      }
      const streets = await response.json();
      const layer = window.L.geoJSON(streets, {
        className: "cg-street",
        interactive: false,
        style: () => ({ color: "#0b0c0c", weight: 2, fill: false }),
      }).addTo(this.map);
      layer.bringToBack();
      if (!this.points.size) {
        this.map.fitBounds(layer.getBounds());
      }
    } catch (error) {
      console.warn("citygrid command centre:", error);
    }
  }

  markerClass(point) {
    const classes = ["cg-case", `cg-case--${point.state}`, "leaflet-interactive"];
    if (isOverdue(point) || point.overdue) {
      classes.push("cg-case--overdue");
    }
    if (point.ref === this.selectedRef()) {
      classes.push("cg-case--selected");
    }
    return classes.join(" ");
  }

  placeMarker(point) {
    if (!this.map) {
      return;
    }
    let marker = this.markers.get(point.ref);
    if (!OPEN_STATES.has(point.state)) {
      if (marker) {
        marker.remove();
        this.markers.delete(point.ref);
      }
      return;
    }
    if (!marker) {
      marker = window.L.circleMarker([point.lat, point.lon], {
        radius: 10,
        className: this.markerClass(point),
      });
      marker.on("click", () => this.openCase(point.ref));
      marker.addTo(this.map);
      this.markers.set(point.ref, marker);
      const path = marker.getElement();
      if (path) {
        path.setAttribute("tabindex", "0");
        path.setAttribute("role", "button");
        path.setAttribute("data-ref", point.ref);
        path.setAttribute("aria-label", this.describe(point));
        path.addEventListener("keydown", (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            this.openCase(point.ref);
          }
        });
      }
    }
    const path = marker.getElement();
    if (path) {
      path.setAttribute("class", this.markerClass(point));
      path.setAttribute("data-state", point.state);
      path.setAttribute("aria-label", this.describe(point));
    }
  }

  describe(point) {
    const parts = [this.word("categories", point.category), this.word("states", point.state)];
    if (isOverdue(point) || point.overdue) {
      parts.push(this.word(null, "overdue"));
    }
    return parts.join(" · ");
  }

  // ------------------------------------------------------------------ feed

  feedItem(point, fresh) {
    const item = element("li", {
      class: fresh ? "feed-item feed-item--new" : "feed-item",
      "data-ref": point.ref,
      "data-state": point.state,
    });
    const link = element("a", {
      class: "feed-item__link",
      href: `/command?case=${encodeURIComponent(point.ref)}`,
      "data-open-case": point.ref,
    });
    link.append(element("span", { class: "feed-item__title" }, this.word("categories", point.category)));
    const meta = element("span", { class: "feed-item__meta" });
    meta.append(
      element("span", { class: `case-state case-state--${point.state}` }, this.word("states", point.state)),
    );
    if (isOverdue(point) || point.overdue) {
      meta.append(" ", element("span", { class: "case-overdue" }, this.word(null, "overdue")));
    }
    meta.append(" · ", element("span", { class: "code" }, point.grid_code), " · ");
    const at = point.reported_at ? new Date(point.reported_at) : new Date();
    meta.append(element("time", { datetime: at.toISOString() }, clockFormat.format(at)));
    link.append(meta);
    item.append(link);
    return item;
  }

  showInFeed(point, fresh) {
    if (!this.feed) {
      return;
    }
    const empty = this.feed.querySelector("[data-feed-empty]");
    if (empty) {
      empty.remove();
    }
    const existing = this.feed.querySelector(`li[data-ref="${CSS.escape(point.ref)}"]`);
    const item = this.feedItem(point, fresh || Boolean(existing));
    if (existing) {
      existing.remove();
    }
    this.feed.prepend(item);
    while (this.feed.children.length > FEED_MAX) {
      this.feed.lastElementChild.remove();
    }
  }

  onCreated(data) {
    const point = {
      ref: data.ref,
      lat: data.lat,
      lon: data.lon,
      state: data.state,
      overdue: false,
      category: data.category,
      priority: data.priority,
      grid_code: data.grid_code,
      reported_at: data.at,
      deadline_at: null,
      department: data.department,
    };
    this.points.set(point.ref, point);
    this.placeMarker(point);
    this.showInFeed(point, true);
  }

  onChanged(data) {
    const point = this.points.get(data.ref) || {
      ref: data.ref,
      grid_code: data.grid_code,
      category: "",
      reported_at: data.at,
    };
    point.state = data.to_state;
    point.deadline_at = data.deadline_at;
    point.overdue = Boolean(data.overdue_escalated) && DEADLINE_STATES.has(data.to_state);
    point.department = data.department;
    this.points.set(point.ref, point);
    if (point.lat !== undefined) {
      this.placeMarker(point);
    }
    if (point.category) {
      this.showInFeed(point, false);
    }
    if (point.ref === this.selectedRef()) {
      this.openCase(point.ref, { quiet: true });
    }
  }

  setStatus(text, isError = false) {
    if (this.status) {
      this.status.textContent = text;
      this.status.classList.toggle("feed-status--error", isError);
    }
  }

  startStream() {
    if (!window.EventSource || !this.feed) {
      return;
    }
    const source = new EventSource(STREAM_URL);
    const parse = (handler) => (event) => {
      try {
        handler(JSON.parse(event.data));
      } catch (error) {
        console.error("citygrid command centre:", error);
      }
    };
    source.addEventListener("case.created", parse((data) => this.onCreated(data)));
    source.addEventListener("case.changed", parse((data) => this.onChanged(data)));
    source.addEventListener("open", () => {
      this.feed.dataset.stream = "open";
      this.setStatus(this.word(null, "live"));
    });
    source.addEventListener("error", () => {
      this.feed.dataset.stream = "reconnecting";
      this.setStatus(this.word(null, "reconnecting"), true);
    });
    this.source = source;
  }

  // ------------------------------------------------------------------ panel

  selectedRef() {
    const panel = document.querySelector("[data-panel]");
    return panel ? panel.dataset.case || "" : "";
  }

  async openCase(ref, { quiet = false } = {}) {
    const panel = document.querySelector("[data-panel]");
    if (!panel) {
      window.location.assign(`/command?case=${encodeURIComponent(ref)}`);
      return;
    }
    panel.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(`/command/panel/${encodeURIComponent(ref)}`, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (!response.ok) {
        throw new Error(`HTTP ${response.status}`);
      }
      const html = await response.text();
      const fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-panel]");
      if (!fresh) {
        throw new Error("no panel in the answer");
      }
      panel.replaceWith(fresh);
      window.history.replaceState(null, "", `/command?case=${encodeURIComponent(ref)}`);
      for (const point of [this.points.get(panel.dataset.case || ""), this.points.get(ref)]) {
        if (point) {
          this.placeMarker(point);
        }
      }
      for (const item of document.querySelectorAll(".feed-item--selected")) {
        item.classList.remove("feed-item--selected");
      }
      const item = this.feed && this.feed.querySelector(`li[data-ref="${CSS.escape(ref)}"]`);
      if (item) {
        item.classList.add("feed-item--selected");
      }
      if (!quiet) {
        const heading = fresh.querySelector("h2");
        if (heading) {
          heading.setAttribute("tabindex", "-1");
          heading.focus();
        }
      }
    } catch (error) {
      console.error("citygrid command centre:", error);
      panel.removeAttribute("aria-busy");
      if (!quiet) {
        window.location.assign(`/command?case=${encodeURIComponent(ref)}`);
      }
    }
  }

  listen() {
    document.addEventListener("click", (event) => {
      const link = event.target.closest("[data-open-case]");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) {
        return;
      }
      event.preventDefault();
      this.openCase(link.dataset.openCase);
    });
  }
}

const OVERDUE_CHECK_MS = 30_000;

const centre = new CommandCentre();
centre.listen();
centre.startMap();
centre.startStream();
// Deadlines pass while the page is open: ring the cases that became overdue.
window.setInterval(() => {
  for (const point of centre.points.values()) {
    centre.placeMarker(point);
  }
}, OVERDUE_CHECK_MS);
