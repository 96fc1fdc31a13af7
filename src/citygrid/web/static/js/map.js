// The territory map: draws a district's streets, communities and grids (or one grid) from
// the GeoJSON API with Leaflet, and shows a grid's counts when it is tapped.
//
// Progressive enhancement: the page is complete without this module (the server renders
// the list of streets and grids). Configuration comes from data- attributes on the map
// element, because the Content-Security-Policy allows no inline script:
//   data-api          API root, e.g. "/api/v1"
//   data-district     district code to draw with its streets, communities and grids
//   data-grid         a grid code: draw this grid only (the grid page) ...
//   data-context      ... and, faintly, the other grids under this unit (its community)
//   data-tile-url     optional base-map tile URL template; no tiles without it
//   data-labels       JSON of translated labels (the server translates, not the script)
//   data-panel        id of the element that shows the selected grid

const COUNT_KEYS = ["buildings", "housing_units", "households", "residents", "components"];

const STYLE = {
  street: { color: "#0b0c0c", weight: 4, fill: false, interactive: false },
  community: { color: "#505a5f", weight: 2.5, dashArray: "8 6", fill: false, interactive: false },
  grid: { color: "#0b3d91", weight: 1.5, fillColor: "#1d70b8", fillOpacity: 0.2 },
  gridSelected: { color: "#0b0c0c", weight: 4, fillColor: "#ffbf47", fillOpacity: 0.65 },
  gridFocus: { color: "#0b0c0c", weight: 4, fillColor: "#ffbf47", fillOpacity: 0.5 },
  neighbour: { color: "#505a5f", weight: 1.5, dashArray: "4 4", fillColor: "#ffffff", fillOpacity: 0.5 },
};

function readConfig(element) {
  const data = element.dataset;
  let labels = {};
  try {
    labels = JSON.parse(data.labels || "{}");
  } catch {
    labels = {};
  }
  return {
    api: (data.api || "/api/v1").replace(/\/$/, ""),
    district: data.district || "",
    grid: data.grid || "",
    context: data.context || "",
    tileUrl: data.tileUrl || "",
    panel: data.panel ? document.getElementById(data.panel) : null,
    labels,
  };
}

function label(config, key) {
  return config.labels[key] || key;
}

async function fetchCollection(url) {
  const response = await fetch(url, {
    headers: { Accept: "application/geo+json, application/json" },
    credentials: "same-origin",
  });
  if (!response.ok) {
    throw new Error(`${url}: HTTP ${response.status}`);
  }
  return response.json();
}

function territoryUrl(config, code, level) {
  const base = `${config.api}/territory/${encodeURIComponent(code)}/grids.geojson`;
  return level ? `${base}?level=${encodeURIComponent(level)}` : base;
}

function featureName(properties, locale) {
  const localised = locale.startsWith("zh") ? properties.name_zh : properties.name_en;
  return localised || properties.name || properties.code || "";
}

// The API may give components as a total or as counts per class: show the total.
function countValue(properties, key) {
  const value = properties[key];
  if (value && typeof value === "object") {
    return Object.values(value).reduce((sum, count) => sum + (Number(count) || 0), 0);
  }
  return Number(value) || 0;
}

function formatNumber(value, locale) {
  return new Intl.NumberFormat(locale).format(value);
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

// The side panel is built with textContent only: names come from the database.
function showGrid(config, properties, locale) {
  const panel = config.panel;
  if (!panel) {
    return;
  }
  const heading = element("h2", { id: "grid-panel-title" }, featureName(properties, locale));
  const code = element("span", { class: "code" }, `${label(config, "code")} ${properties.code}`);
  const counts = element("dl", { class: "grid-counts" });
  for (const key of COUNT_KEYS) {
    counts.append(element("dt", {}, label(config, key)));
    counts.append(
      element("dd", { "data-count": key }, formatNumber(countValue(properties, key), locale)),
    );
  }
  const link = element(
    "a",
    { class: "button", href: `/grids/${encodeURIComponent(properties.code)}` },
    label(config, "open"),
  );
  panel.replaceChildren(heading, code, counts, link);
  panel.setAttribute("aria-labelledby", "grid-panel-title");
}

function setStatus(status, text, isError = false) {
  status.textContent = text;
  status.hidden = !text;
  status.classList.toggle("map__status--error", isError);
}

function makeMap(host, config) {
  const L = window.L;
  const map = L.map(host, {
    attributionControl: false,
    zoomSnap: 0.25,
    zoomDelta: 0.5,
  });
  if (config.tileUrl) {
    L.tileLayer(config.tileUrl, { maxZoom: 19 }).addTo(map);
  }
  return map;
}

// Grids are tappable and reachable by keyboard: each path gets a role, a name and a
// tab stop, and Enter or Space selects it like a tap.
function makeGridsInteractive(layer, onSelect) {
  layer.eachLayer((gridLayer) => {
    const path = gridLayer.getElement && gridLayer.getElement();
    const properties = gridLayer.feature.properties;
    if (path) {
      path.setAttribute("data-code", properties.code);
      path.setAttribute("tabindex", "0");
      path.setAttribute("role", "button");
      path.setAttribute("aria-label", `${properties._label} ${properties.code}`);
      path.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          onSelect(gridLayer);
        }
      });
    }
    gridLayer.on("click", () => onSelect(gridLayer));
  });
}

// Where the map opens when there is nothing to draw: the demo city's centre.
const FALLBACK_CENTRE = [23.13, 113.27];

function fitTo(map, bounds, padding, config, status, grow = 0) {
  if (bounds.isValid()) {
    map.fitBounds(bounds.pad(grow), { padding: [padding, padding] });
    setStatus(status, "");
  } else {
    map.setView(FALLBACK_CENTRE, 13);
    setStatus(status, label(config, "empty"));
  }
}

async function drawDistrict(map, config, locale, status) {
  const L = window.L;
  const [streets, communities, grids] = await Promise.allSettled([
    fetchCollection(territoryUrl(config, config.district, "street")),
    fetchCollection(territoryUrl(config, config.district, "community")),
    fetchCollection(territoryUrl(config, config.district, "")),
  ]);
  if (grids.status !== "fulfilled") {
    throw grids.reason;
  }
  for (const feature of grids.value.features) {
    feature.properties._label = featureName(feature.properties, locale);
  }
  // The view comes first: Leaflet creates a layer's SVG paths only once the map has one.
  const gridLayer = L.geoJSON(grids.value, { className: "cg-grid", style: () => STYLE.grid });
  fitTo(map, gridLayer.getBounds(), 16, config, status);
  // Fills first, outlines on top (they let taps through): street and community lines stay
  // whole over the grids. A focused grid shows by its yellow fill (app.css).
  gridLayer.addTo(map);
  for (const [result, style, className] of [
    [communities, STYLE.community, "cg-community"],
    [streets, STYLE.street, "cg-street"],
  ]) {
    if (result.status === "fulfilled") {
      L.geoJSON(result.value, { className, style: () => style, interactive: false }).addTo(map);
    } else {
      console.warn("citygrid map:", result.reason);
    }
  }

  let selected = null;
  makeGridsInteractive(gridLayer, (layer) => {
    if (selected) {
      selected.setStyle(STYLE.grid);
    }
    selected = layer;
    layer.setStyle(STYLE.gridSelected);
    // Moving the path to the top of the SVG takes the keyboard focus away: give it back.
    const hadFocus = document.activeElement === layer.getElement();
    layer.bringToFront();
    if (hadFocus) {
      layer.getElement().focus();
    }
    showGrid(config, layer.feature.properties, locale);
  });
  map.getContainer().dataset.gridCount = String(grids.value.features.length);
}

// The grid page: the grid itself, with the other grids of its community (data-context)
// drawn faintly around it so that the shape has a place.
async function drawGrid(map, config, locale, status) {
  const L = window.L;
  const collection = await fetchCollection(territoryUrl(config, config.context || config.grid, ""));
  const own = collection.features.filter((feature) => feature.properties.code === config.grid);
  const others = collection.features.filter((feature) => feature.properties.code !== config.grid);
  const layer = L.geoJSON(
    { type: "FeatureCollection", features: own },
    { className: "cg-grid", style: () => STYLE.gridFocus, interactive: false },
  );
  fitTo(map, layer.getBounds(), 16, config, status, 0.5);
  L.geoJSON(
    { type: "FeatureCollection", features: others },
    { className: "cg-neighbour", style: () => STYLE.neighbour, interactive: false },
  ).addTo(map);
  layer.addTo(map);
  map.getContainer().dataset.gridCount = String(own.length);
}

export async function initMap(host) {
  if (!window.L) {
    return;
  }
  const config = readConfig(host);
  const locale = document.documentElement.lang || "zh-CN";
  // The server-rendered fallback text inside the map element makes way for the map.
  host.replaceChildren();
  host.classList.add("map--live");
  const status = element("p", { class: "map__status", role: "status" });
  const map = makeMap(host, config);
  host.append(status);
  setStatus(status, label(config, "loading"));
  try {
    if (config.grid) {
      await drawGrid(map, config, locale, status);
    } else {
      await drawDistrict(map, config, locale, status);
    }
    host.dataset.state = "ready";
  } catch (error) {
    console.error("citygrid map:", error);
    setStatus(status, label(config, "failed"), true);
    host.dataset.state = "failed";
  }
  return map;
}

for (const host of document.querySelectorAll("[data-map]")) {
  initMap(host);
}
