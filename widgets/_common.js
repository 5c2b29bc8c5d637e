// Shared prelude of the widgets' front ends (prepended to each widget's ES module by widgets/_assets.py).

// A DOM element: h(tag, {class, text, onclick, ...attributes}, children).
function h(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of [].concat(children)) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// The bytes of a binary trait (DataView, typed array or ArrayBuffer) as a 4-byte aligned Uint8Array.
function bytesOf(value) {
  let u8;
  if (value instanceof DataView || ArrayBuffer.isView(value)) {
    u8 = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  } else if (value instanceof ArrayBuffer) {
    u8 = new Uint8Array(value);
  } else {
    u8 = new Uint8Array(0);
  }
  return u8.byteOffset % 4 === 0 ? u8 : u8.slice(); // typed views need 4-byte alignment
}

// Map layer styles of the bird's-eye views.
const BG = "#fbfbfb";
const MAP_STYLE = {
  drivable_area: { fill: "#e9ecef" },
  drivable_hole: { fill: BG },
  walkway: { fill: "#f1f3f5" },
  crosswalk: { fill: "#dee2e6", stroke: "#adb5bd", width: 1 },
  stop_line: { fill: "#ffc9c9", stroke: "#fa5252", width: 1 },
  lane_boundary: { stroke: "#adb5bd", width: 1 },
  lane: { stroke: "#ced4da", width: 1, dash: [4, 4] },
  connector: { stroke: "#dee2e6", width: 1, dash: [2, 4] },
};
