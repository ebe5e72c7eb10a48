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
  if (s.type === "object" && s.title && s.properties) return s.title;  // a model: named by its type
  return s.type || s.title || "any";
}

// a description's Markdown, as the page shows it: `code` in code, the rest as text
function markdown(text) {
  const out = document.createDocumentFragment();
  String(text || "").split(/(`[^`]+`)/).forEach((part) => {
    if (part.length > 2 && part.startsWith("`") && part.endsWith("`")) out.append(el("code", { textContent: part.slice(1, -1) }));
    else if (part) out.append(part);
  });
  return out;
}

function limits(schema, spec, said = "") {
  const s = resolve(schema, spec);
  const out = [];
  for (const [key, word] of [["minimum", "≥"], ["exclusiveMinimum", ">"], ["maximum", "≤"], ["exclusiveMaximum", "<"]]) {
    if (s[key] !== undefined) out.push(`${word} ${s[key]}`);
  }
  if (s.maxLength !== undefined && !said.includes(`at most ${s.maxLength} characters`)) {
    out.push(`at most ${s.maxLength} characters`);
  }
  if (s.default !== undefined) out.push(`default ${JSON.stringify(s.default)}`);
  return out.join(", ");
}

function fieldTable(rows) {
  const head = el("tr", {}, ...["name", "where", "type", "required", "notes"].map((h) => el("th", { textContent: h })));
  const body = rows.map((r) => el("tr", {},
    el("td", {}, el("code", { textContent: r.name })), el("td", { textContent: r.where }),
    el("td", { textContent: r.type }), el("td", { textContent: r.required ? "yes" : "" }),
    el("td", {}, markdown(r.notes))));
  return el("table", { className: "fields" }, el("thead", {}, head), el("tbody", {}, ...body));
}

function responseFields(schema, spec) {
  // The fields of a response model, one row each (nested models are named by their type).
  const s = resolve(schema, spec);
  return Object.entries(s.properties || {}).map(([name, prop]) => ({
    name, where: "response", type: typeOf(prop, spec), required: (s.required || []).includes(name),
    notes: resolve(prop, spec).description || "",
  }));
}

function tryForm(path, method, op, spec) {
  // A small form that sends this request to this server and shows the answer (GET routes with query fields).
  const params = (op.parameters || []).filter((p) => p.in === "query");
  const form = el("form", { className: "try" });
  const inputs = params.map((p) => {
    const s = resolve(p.schema, spec);
    const input = el("input", { name: p.name, id: `try-${method}-${path}-${p.name}`.replace(/[^a-z0-9-]+/gi, "-"),
                                placeholder: s.default !== undefined ? String(s.default) : "" });
    form.append(el("label", { htmlFor: input.id, textContent: p.name }), input);
    return input;
  });
  const output = el("pre", { className: "try-output", hidden: true });
  const send = el("button", { type: "submit", textContent: "Send" });
  form.append(send, output);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const input of inputs) if (input.value.trim()) query.append(input.name, input.value.trim());
    const url = `${path}${query.toString() ? `?${query}` : ""}`;
    send.disabled = true;
    try {
      const response = await fetch(url);
      const text = await response.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (err) { /* not JSON: shown as it is */ }
      output.textContent = `GET ${url}\n${response.status} ${response.statusText}\n\n${shown}`;
    } catch (err) {
      output.textContent = `GET ${url}\nthe request failed: ${err}`;
    } finally {
      output.hidden = false;
      send.disabled = false;
    }
  });
  return el("details", { className: "try-it" }, el("summary", { textContent: "Try it" }), form);
}

function renderOperation(path, method, op, spec) {
  const id = `${method}-${path}`.replace(/[^a-z0-9]+/gi, "-");
  const rows = (op.parameters || []).map((p) => {
    const said = p.description || resolve(p.schema, spec).description || "";
    return { name: p.name, where: p.in, type: typeOf(p.schema, spec), required: p.required,
             notes: [said, limits(p.schema, spec, said)].filter(Boolean).join("; ") };
  });
  const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
  if (body) {
    const schema = resolve(body.schema, spec);
    for (const [name, prop] of Object.entries(schema.properties || {})) {
      const said = resolve(prop, spec).description || "";
      rows.push({ name, where: "JSON body", type: typeOf(prop, spec), required: (schema.required || []).includes(name),
                  notes: [said, limits(prop, spec, said)].filter(Boolean).join("; ") });
    }
  }
  const responses = Object.entries(op.responses || {}).map(([code, r]) => `${code} ${r.description || ""}`.trim());
  const section = el("article", { className: "endpoint", id },
    el("h2", {}, el("span", { className: `method ${method}`, textContent: method.toUpperCase() }), " ",
       el("code", { textContent: path })),
    el("p", {}, markdown(op.description || op.summary || "")));
  if (rows.length) section.append(fieldTable(rows));
  section.append(el("p", { className: "responses", textContent: `Responses: ${responses.join(" · ")}` }));
  const ok = op.responses && op.responses["200"] && op.responses["200"].content;
  const answer = ok && ok["application/json"] && ok["application/json"].schema;
  const model = answer && resolve(answer, spec);
  if (model && model.properties) {
    section.append(el("h3", { textContent: "Response (200)" }), fieldTable(responseFields(answer, spec)));
    if (model.example) {
      section.append(el("h3", { textContent: "Example response" }),
                     el("pre", { className: "example", textContent: JSON.stringify(model.example, null, 2) }));
    }
  }
  if (method === "get" && !path.includes("{")) section.append(tryForm(path, method, op, spec));
  toc.append(el("a", { href: `#${id}`, textContent: `${method.toUpperCase()} ${path}` }));
  return section;
}

async function main() {
  try {
    const response = await fetch("/api/openapi.json");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const spec = await response.json();
    document.getElementById("api-intro").replaceChildren(markdown(spec.info.description || ""));
    document.title = `${spec.info.title} ${spec.info.version}: API reference`;
    // what a client comes for first: search, then moments, then the rest in the server's order
    const first = ["/api/search", "/api/moments"];
    const paths = Object.keys(spec.paths).sort((a, b) => (first.includes(a) ? first.indexOf(a) : first.length) -
                                                          (first.includes(b) ? first.indexOf(b) : first.length));
    for (const path of paths) {
      for (const [method, op] of Object.entries(spec.paths[path])) endpoints.append(renderOperation(path, method, op, spec));
    }
  } catch (err) {
    const box = document.getElementById("api-error");
    box.textContent = `The API schema could not be loaded: ${err}`;
    box.hidden = false;
  }
}

main();
