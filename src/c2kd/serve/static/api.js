// The API reference page: renders /api/openapi.json with no library and nothing fetched from other sites.
"use strict";

const endpoints = document.getElementById("api-endpoints");
const toc = document.getElementById("api-toc");

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

function resolve(schema, spec) {
  // Follow a local "$ref" (#/components/schemas/Name) to the schema it names.
  let s = schema || {};
  while (s.$ref) s = s.$ref.split("/").slice(1).reduce((node, key) => node[key], spec);
  return s;
}

function typeOf(schema, spec) {
  const s = resolve(schema, spec);
  if (s.anyOf) return s.anyOf.map((x) => typeOf(x, spec)).filter((t) => t !== "null").join(" | ") || "null";
  if (s.type === "array") return `list of ${typeOf(s.items, spec)}`;
  if (s.type === "object" && s.additionalProperties) return `object of ${typeOf(s.additionalProperties, spec)}`;
  return s.type || s.title || "any";
}

function limits(schema, spec) {
  const s = resolve(schema, spec);
  const out = [];
  for (const [key, word] of [["minimum", "≥"], ["exclusiveMinimum", ">"], ["maximum", "≤"], ["exclusiveMaximum", "<"]]) {
    if (s[key] !== undefined) out.push(`${word} ${s[key]}`);
  }
  if (s.maxLength !== undefined) out.push(`at most ${s.maxLength} characters`);
  if (s.default !== undefined) out.push(`default ${JSON.stringify(s.default)}`);
  return out.join(", ");
}

function fieldTable(rows) {
  const head = el("tr", {}, ...["name", "where", "type", "required", "notes"].map((h) => el("th", { textContent: h })));
  const body = rows.map((r) => el("tr", {},
    el("td", {}, el("code", { textContent: r.name })), el("td", { textContent: r.where }),
    el("td", { textContent: r.type }), el("td", { textContent: r.required ? "yes" : "" }),
    el("td", { textContent: r.notes })));
  return el("table", { className: "fields" }, el("thead", {}, head), el("tbody", {}, ...body));
}

function renderOperation(path, method, op, spec) {
  const id = `${method}-${path}`.replace(/[^a-z0-9]+/gi, "-");
  const rows = (op.parameters || []).map((p) => ({
    name: p.name, where: p.in, type: typeOf(p.schema, spec), required: p.required,
    notes: [p.description || resolve(p.schema, spec).description, limits(p.schema, spec)].filter(Boolean).join("; "),
  }));
  const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
  if (body) {
    const schema = resolve(body.schema, spec);
    for (const [name, prop] of Object.entries(schema.properties || {})) {
      rows.push({ name, where: "JSON body", type: typeOf(prop, spec), required: (schema.required || []).includes(name),
                  notes: [resolve(prop, spec).description, limits(prop, spec)].filter(Boolean).join("; ") });
    }
  }
  const responses = Object.entries(op.responses || {}).map(([code, r]) => `${code} ${r.description || ""}`.trim());
  const section = el("article", { className: "endpoint", id },
    el("h2", {}, el("span", { className: `method ${method}`, textContent: method.toUpperCase() }), " ",
       el("code", { textContent: path })),
    el("p", { textContent: op.description || op.summary || "" }));
  if (rows.length) section.append(fieldTable(rows));
  section.append(el("p", { className: "responses", textContent: `Responses: ${responses.join(" · ")}` }));
  toc.append(el("a", { href: `#${id}`, textContent: `${method.toUpperCase()} ${path}` }));
  return section;
}

async function main() {
  try {
    const response = await fetch("/api/openapi.json");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const spec = await response.json();
    document.getElementById("api-intro").textContent = spec.info.description || "";
    document.title = `${spec.info.title} ${spec.info.version}: API reference`;
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(methods)) endpoints.append(renderOperation(path, method, op, spec));
    }
  } catch (err) {
    const box = document.getElementById("api-error");
    box.textContent = `The API schema could not be loaded: ${err}`;
    box.hidden = false;
  }
}

main();
