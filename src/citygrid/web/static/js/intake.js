// Intake forms: the device's position, a map to tap, and previews of the chosen photos.
//
// Progressive enhancement: without this module the form is complete (latitude and
// longitude are plain fields, photos a plain file input). Configuration comes from data-
// attributes (the Content-Security-Policy allows no inline script):
//   [data-intake-map]      data-api, data-grid (centre on this grid), data-district,
//                          data-tile-url (optional), data-labels (translated strings)
//   [data-intake-locate]   the "use my position" button (shown when the device can)
//   [data-intake-status]   where the outcome is announced
//   [data-intake-photos]   the file input; [data-intake-previews] the list of previews

const DECIMALS = 6;

function readLabels(element) {
  try {
    return JSON.parse(element?.dataset.labels || "{}");
  } catch {
    return {};
  }
}

function fields(form) {
  return { lat: form.querySelector("#lat"), lon: form.querySelector("#lon") };
}

function setPosition(form, lat, lon) {
  const { lat: latField, lon: lonField } = fields(form);
  latField.value = lat.toFixed(DECIMALS);
  lonField.value = lon.toFixed(DECIMALS);
  form.dispatchEvent(new CustomEvent("intake:position", { detail: { lat, lon } }));
}

function announce(status, text) {
  if (status) {
    status.textContent = text || "";
  }
}

function setUpLocate(form, labels) {
  const button = form.querySelector("[data-intake-locate]");
  const status = form.querySelector("[data-intake-status]");
  if (!button || !("geolocation" in navigator)) {
    return;
  }
  button.hidden = false;
  button.addEventListener("click", () => {
    announce(status, labels.locating);
    button.disabled = true;
    navigator.geolocation.getCurrentPosition(
      (position) => {
        button.disabled = false;
        setPosition(form, position.coords.latitude, position.coords.longitude);
        announce(status, labels.located);
      },
      () => {
        button.disabled = false;
        announce(status, labels.denied);
      },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 },
    );
  });
}

async function fitTo(map, api, code) {
  const response = await fetch(`${api}/territory/${encodeURIComponent(code)}/grids.geojson`, {
    headers: { Accept: "application/geo+json, application/json" },
    credentials: "same-origin",
  });
  if (!response.ok) {
    return;
  }
  const layer = window.L.geoJSON(await response.json(), {
    style: { color: "#0b3d91", weight: 2, fillColor: "#1d70b8", fillOpacity: 0.08 },
    interactive: false,
  }).addTo(map);
  const bounds = layer.getBounds();
  if (bounds.isValid()) {
    map.fitBounds(bounds, { padding: [12, 12] });
  }
}

function setUpMap(form, element, labels) {
  if (!element || !window.L) {
    return;
  }
  const L = window.L;
  element.hidden = false;
  const map = L.map(element, { zoomSnap: 0.25 });
  map.setView([23.13, 113.27], 13);
  if (element.dataset.tileUrl) {
    L.tileLayer(element.dataset.tileUrl, { maxZoom: 19 }).addTo(map);
  }
  const api = (element.dataset.api || "/api/v1").replace(/\/$/, "");
  const code = element.dataset.grid || element.dataset.district;
  if (code) {
    fitTo(map, api, code).catch(() => {});
  }
  let marker = null;
  const place = (lat, lon) => {
    if (marker) {
      marker.setLatLng([lat, lon]);
    } else {
      marker = L.circleMarker([lat, lon], {
        radius: 10,
        color: "#0b0c0c",
        weight: 3,
        fillColor: "#ffbf47",
        fillOpacity: 0.9,
      }).addTo(map);
    }
  };
  map.on("click", (event) => {
    setPosition(form, event.latlng.lat, event.latlng.lng);
    announce(form.querySelector("[data-intake-status]"), labels.picked);
  });
  form.addEventListener("intake:position", (event) => {
    place(event.detail.lat, event.detail.lon);
  });
  const { lat, lon } = fields(form);
  if (lat.value && lon.value && !Number.isNaN(Number(lat.value))) {
    place(Number(lat.value), Number(lon.value));
  }
}

function setUpPreviews(form) {
  const input = form.querySelector("[data-intake-photos]");
  const list = form.querySelector("[data-intake-previews]");
  if (!input || !list) {
    return;
  }
  input.addEventListener("change", () => {
    for (const image of list.querySelectorAll("img")) {
      URL.revokeObjectURL(image.src);
    }
    list.replaceChildren();
    for (const file of input.files) {
      const item = document.createElement("li");
      const image = document.createElement("img");
      image.src = URL.createObjectURL(file);
      image.alt = file.name;
      item.append(image);
      list.append(item);
    }
  });
}

function start() {
  for (const form of document.querySelectorAll(".intake__form")) {
    const mapElement = form.querySelector("[data-intake-map]");
    const labels = readLabels(mapElement);
    setUpLocate(form, labels);
    setUpPreviews(form);
    setUpMap(form, mapElement, labels);
  }
}

// Leaflet is a classic deferred script: it has run before a module script executes.
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
