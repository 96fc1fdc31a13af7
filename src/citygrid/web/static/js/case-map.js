// The case page's small map: the case's place as a marker in the colour of its state.
// Configuration comes from data- attributes (the CSP allows no inline script):
//   data-lat, data-lon   the case's point (WGS 84)
//   data-state           its state (the marker's colour, from cases.css)
//   data-tile-url        optional base-map tile URL template

function start(host) {
  const L = window.L;
  const lat = Number(host.dataset.lat);
  const lon = Number(host.dataset.lon);
  if (!L || !Number.isFinite(lat) || !Number.isFinite(lon)) {
    return;
  }
  host.replaceChildren();
  host.classList.add("map--live");
  const map = L.map(host, { attributionControl: false, zoomSnap: 0.25 });
  if (host.dataset.tileUrl) {
    L.tileLayer(host.dataset.tileUrl, { maxZoom: 19 }).addTo(map);
  }
  map.setView([lat, lon], 17);
  L.circleMarker([lat, lon], {
    radius: 12,
    className: `cg-case cg-case--${host.dataset.state || "reported"}`,
    interactive: false,
  }).addTo(map);
  host.dataset.map = "ready";
}

for (const host of document.querySelectorAll("[data-case-point]")) {
  start(host);
}
