// Offline checks of microbatch's deployment files:
//   node check.mjs --manifests a.yaml,b.yaml --dockerfiles Dockerfile,... \
//     [--server-help FILE] [--client-help FILE] --repo DIR
// 1. every rendered object validates against the Kubernetes (and
//    prometheus-operator) schemas of kubernetes-models;
// 2. no unknown fields (those schemas accept them, the API server's strict
//    decoding does not): property names are checked against the models'
//    TypeScript interfaces, recursively;
// 3. Dockerfiles parse, copy only files that exist, run scripts that exist,
//    expose the server's ports, end as a non-root user with a HEALTHCHECK;
// 4. cross-references: flags exist in the binaries' --help, probe ports are
//    container ports, the grace period covers preStop + drain + shutdown.
// Prints one line per failure and a summary; exits 1 on any failure.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import YAML from "yaml";
import { DockerfileParser } from "dockerfile-ast";

const require = createRequire(import.meta.url);
const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith("--") ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
const repo = args.repo ?? ".";
let passed = 0;
const failures = [];
const check = (ok, message) => (ok ? passed++ : failures.push(message));

// ---- Interfaces from the models' .d.ts files: alias -> {prop: typeText}, and
// type aliases (IntOrString = string | number, ...): name -> typeText.
const interfaces = new Map();
const typeAliases = new Map();
function scanTypes(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) scanTypes(p);
    else if (entry.name.endsWith(".d.ts")) parseDts(fs.readFileSync(p, "utf8"));
  }
}
// Splits an object type's body into {prop: typeText} ("name"?: T; ...).
function parseProps(body) {
  body = body.replace(/\/\*\*[\s\S]*?\*\//g, "");
  const props = {};
  let d = 0, line = "";
  for (const ch of body) {
    if (ch === "{" || ch === "<" || ch === "(") d++;
    if (ch === "}" || ch === ">" || ch === ")") d--;
    if (ch === ";" && d === 0) {
      const pm = line.trim().match(/^"?([^"?:]+)"?\??:\s*([\s\S]*)$/);
      if (pm) props[pm[1]] = pm[2].trim();
      line = "";
    } else line += ch;
  }
  return props;
}
function parseDts(text) {
  const aliases = new Map();
  for (const m of text.matchAll(/export type \{([^}]*)\}/g)) {
    for (const part of m[1].split(",")) {
      const [local, alias] = part.split(" as ").map((s) => s.trim());
      if (alias) aliases.set(local, alias);
    }
  }
  for (const m of text.matchAll(/export type (\w+) = ([^;]+);/g)) {
    if (!typeAliases.has(m[1])) typeAliases.set(m[1], m[2].trim());
  }
  for (const m of text.matchAll(/export interface (\w+)(?:<[^>]*>)?(?: extends ([\w, ]+))? \{/g)) {
    let depth = 1, i = m.index + m[0].length, start = i;
    while (depth > 0 && i < text.length) {
      if (text[i] === "{") depth++;
      if (text[i] === "}") depth--;
      i++;
    }
    const props = parseProps(text.slice(start, i - 1));
    // Models extend TypeMeta (apiVersion, kind).
    if (m[2] && m[2].includes("TypeMeta")) {
      props.apiVersion = "string";
      props.kind = "string";
    }
    const name = aliases.get(m[1]) ?? m[1];
    if (!interfaces.has(name)) interfaces.set(name, props);
    if (!interfaces.has(m[1])) interfaces.set(m[1], props);
  }
  for (const [local, alias] of aliases) {
    if (typeAliases.has(local) && !typeAliases.has(alias)) typeAliases.set(alias, typeAliases.get(local));
  }
}
const nm = path.join(path.dirname(new URL(import.meta.url).pathname), "node_modules");
scanTypes(path.join(nm, "kubernetes-models"));
scanTypes(path.join(nm, "@kubernetes-models"));

// Strict: every object node of a rendered object must be described by an
// interface, an inline object type or a map type; a node whose type cannot be
// resolved is itself a failure (it used to be skipped silently, so unknown
// fields under it were accepted). Scalars are left to the schema validation.
const SCALARS = /^(string|number|boolean|null|undefined|"[^"]*"|'[^']*'|-?[0-9.]+)$/;
function splitTop(t, sep) {
  const parts = [];
  let d = 0, cur = "";
  for (const ch of t) {
    if ("{<([".includes(ch)) d++;
    if ("}>)]".includes(ch)) d--;
    if (ch === sep && d === 0) { parts.push(cur.trim()); cur = ""; } else cur += ch;
  }
  parts.push(cur.trim());
  return parts.filter(Boolean);
}
function checkFields(value, typeText, where, seen = 0) {
  if (value === null || typeof value !== "object") return;
  let t = (typeText ?? "").trim();
  if (seen > 20) return failures.push(`${where}: type ${t} does not resolve`);
  const arr = t.match(/^Array<([\s\S]+)>$/) ?? t.match(/^(\w+)\[\]$/);
  if (arr) {
    if (!Array.isArray(value)) return failures.push(`${where}: expected a list`);
    value.forEach((v, i) => checkFields(v, arr[1], `${where}[${i}]`, seen));
    return;
  }
  if (Array.isArray(value)) return failures.push(`${where}: a list where ${t} is expected`);
  const union = splitTop(t, "|");
  if (union.length > 1) {
    const objects = union.filter((u) => !SCALARS.test(u));
    if (objects.length === 1) return checkFields(value, objects[0], where, seen + 1);
    return failures.push(`${where}: cannot check the fields of an object of type ${t}`);
  }
  const map = t.match(/^\{\s*\[\w+: string\]:\s*([\s\S]+?);?\s*\}$/);
  if (map) {
    for (const [k, v] of Object.entries(value)) checkFields(v, map[1], `${where}.${k}`, seen);
    return;
  }
  let props = null, label = t;
  if (t.startsWith("{") && t.endsWith("}")) { props = parseProps(t.slice(1, -1)); label = "inline object"; }
  else if (interfaces.has(t)) props = interfaces.get(t);
  else if (typeAliases.has(t)) return checkFields(value, typeAliases.get(t), where, seen + 1);
  if (!props) return failures.push(`${where}: no schema for the fields of ${t || "this object"}`);
  for (const [key, v] of Object.entries(value)) {
    if (!(key in props)) {
      failures.push(`${where}: unknown field '${key}' (${label.replace(/^I/, "")})`);
      continue;
    }
    checkFields(v, props[key], `${where}.${key}`, seen);
  }
}

// ---- Kubernetes objects.
const MODULES = {
  "v1": "kubernetes-models/v1", "apps/v1": "kubernetes-models/apps/v1", "batch/v1": "kubernetes-models/batch/v1",
  "policy/v1": "kubernetes-models/policy/v1", "autoscaling/v2": "kubernetes-models/autoscaling/v2",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};
// Interface-name prefix of each apiVersion's kinds in the models' typings.
const ROOT_TYPES = {
  "v1": "IIoK8sApiCoreV1", "apps/v1": "IIoK8sApiAppsV1", "batch/v1": "IIoK8sApiBatchV1",
  "policy/v1": "IIoK8sApiPolicyV1", "autoscaling/v2": "IIoK8sApiAutoscalingV2",
  "monitoring.coreos.com/v1": "IComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1",
};
const objects = [];
for (const file of (args.manifests ?? "").split(",").filter(Boolean)) {
  for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))) {
    const obj = doc.toJSON();
    if (obj) objects.push({ file, obj });
  }
}
check(objects.length > 0, "no rendered objects to check");
for (const { file, obj } of objects) {
  const id = `${path.basename(file)}: ${obj.kind}/${obj.metadata?.name}`;
  const base = MODULES[obj.apiVersion];
  if (!base) {
    failures.push(`${id}: no schema for apiVersion ${obj.apiVersion}`);
    continue;
  }
  const mod = await import(`${base}/${obj.kind}`).catch(() => null);
  if (!mod || !mod[obj.kind]) {
    failures.push(`${id}: no schema for kind ${obj.kind} in ${obj.apiVersion}`);
    continue;
  }
  try {
    new mod[obj.kind](obj).validate();
    passed++;
  } catch (e) {
    failures.push(`${id}: schema: ${e.message.split("\n").slice(0, 4).join(" ")}`);
  }
  const root = ROOT_TYPES[obj.apiVersion] + obj.kind;
  if (!interfaces.has(root)) {
    failures.push(`${id}: no interface ${root} for the unknown-field check`);
    continue;
  }
  const before = failures.length;
  checkFields(obj, root, id);
  if (failures.length === before) passed++;
}

// ---- Cross-references.
const helpFlags = (file) => new Set(file && fs.existsSync(file)
  ? [...fs.readFileSync(file, "utf8").matchAll(/--([a-z][a-z0-9_-]*)/g)].map((m) => m[1]) : []);
const serverFlags = helpFlags(args["server-help"]);
const clientFlags = helpFlags(args["client-help"]);
const flagNames = (list) => list.filter((a) => a.startsWith("--")).map((a) => a.slice(2).split("=")[0]);
const flagValue = (list, name) => list.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const configMaps = objects.filter((o) => o.obj.kind === "ConfigMap");
let flagfile = [];
for (const cm of configMaps) flagfile.push(...(cm.obj.data?.flags ?? "").split("\n").map((s) => s.trim()).filter(Boolean));
for (const { file, obj } of objects) {
  const podSpec = obj.kind === "Deployment" ? obj.spec.template.spec
    : obj.kind === "CronJob" ? obj.spec.jobTemplate.spec.template.spec
    : obj.kind === "Job" ? obj.spec.template.spec : null;
  if (!podSpec) continue;
  const id = `${path.basename(file)}: ${obj.kind}/${obj.metadata.name}`;
  for (const c of podSpec.containers) {
    const isClient = (c.command ?? []).some((s) => s.endsWith("/microbatch"));
    const flags = isClient ? flagNames(c.args ?? []) : [...flagNames(c.args ?? []), ...flagNames(flagfile)];
    const known = isClient ? clientFlags : serverFlags;
    if (known.size === 0) {
      console.log(`check-deploy: skipped flag names of ${id} (${isClient ? "client" : "server"} --help not available)`);
    } else {
      for (const f of flags) check(known.has(f), `${id}: flag --${f} is not accepted by ${isClient ? "microbatch batch" : "microbatch-server"}`);
    }
    if (isClient) continue;
    const all = [...(c.args ?? []), ...flagfile];
    const ports = Object.fromEntries((c.ports ?? []).map((p) => [p.name, p.containerPort]));
    check(String(ports.grpc) === flagValue(all, "grpc_port"), `${id}: container port grpc ${ports.grpc} != --grpc_port ${flagValue(all, "grpc_port")}`);
    check(String(ports.metrics) === flagValue(all, "metrics_port"), `${id}: container port metrics ${ports.metrics} != --metrics_port ${flagValue(all, "metrics_port")}`);
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      const p = c[probe];
      check(!!p, `${id}: ${c.name} has no ${probe}`);
      if (!p) continue;
      const port = p.grpc?.port ?? p.httpGet?.port;
      check(Object.values(ports).includes(port) || port in ports, `${id}: ${probe} port ${port} is not a container port`);
      if (p.httpGet) check(["/healthz", "/readyz", "/metrics"].includes(p.httpGet.path), `${id}: ${probe} path ${p.httpGet.path} is not served`);
    }
    const sleep = Number((c.lifecycle?.preStop?.exec?.command ?? []).at(-1) ?? 0);
    const drain = Number(flagValue(all, "drain_seconds") ?? 5);
    const grace = Number(flagValue(all, "shutdown_grace_seconds") ?? 30);
    const period = podSpec.terminationGracePeriodSeconds ?? 30;
    check(period >= sleep + drain + grace,
      `${id}: terminationGracePeriodSeconds ${period} < preStop ${sleep} + drain ${drain} + shutdown grace ${grace}`);
    check(c.securityContext?.readOnlyRootFilesystem === true, `${id}: root filesystem is writable`);
    check(podSpec.securityContext?.runAsNonRoot === true, `${id}: runAsNonRoot is not set`);
  }
}

// ---- Dockerfiles.
for (const file of (args.dockerfiles ?? "").split(",").filter(Boolean)) {
  const text = fs.readFileSync(file, "utf8");
  const df = DockerfileParser.parse(text);
  const id = path.relative(repo, file);
  const KNOWN = new Set(["FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"]);
  const stages = [];
  let lastUser = null, healthcheck = false, exposed = new Set();
  for (const ins of df.getInstructions()) {
    const kw = ins.getKeyword();
    check(KNOWN.has(kw), `${id}:${ins.getRange().start.line + 1}: unknown instruction ${kw}`);
    if (kw === "FROM") {
      const as = ins.getBuildStage?.();
      stages.push(as);
      lastUser = null;
      healthcheck = false;
      exposed = new Set();
    }
    if (kw === "USER") lastUser = ins.getArgumentsContent();
    if (kw === "HEALTHCHECK") healthcheck = true;
    if (kw === "EXPOSE") ins.getArguments().forEach((a) => exposed.add(a.getValue()));
    if (kw === "COPY" || kw === "ADD") {
      const from = ins.getFromFlag?.()?.getValue();
      const parts = ins.getArguments().map((a) => a.getValue());
      if (from) {
        check(stages.includes(from), `${id}:${ins.getRange().start.line + 1}: COPY --from=${from} names no earlier stage`);
      } else {
        for (const src of parts.slice(0, -1)) {
          check(fs.existsSync(path.join(repo, src)), `${id}:${ins.getRange().start.line + 1}: COPY source ${src} does not exist`);
        }
      }
    }
    if (kw === "RUN") {
      for (const m of ins.getArgumentsContent().matchAll(/(?:^|[\s;&|])((?:\.\/)?scripts\/[\w.-]+\.sh)/g)) {
        const script = path.join(repo, m[1]);
        check(fs.existsSync(script) && (fs.statSync(script).mode & 0o111) !== 0,
          `${id}:${ins.getRange().start.line + 1}: RUN calls ${m[1]}, which is missing or not executable`);
      }
    }
  }
  check(stages.length > 0, `${id}: no FROM`);
  check(lastUser !== null && !["root", "0"].includes(lastUser), `${id}: the final stage does not switch to a non-root USER`);
  check(healthcheck, `${id}: the final stage has no HEALTHCHECK`);
  check(exposed.has("8500") && exposed.has("8502"), `${id}: the final stage does not EXPOSE 8500 and 8502`);
}

for (const f of failures) console.log(`check-deploy: FAIL ${f}`);
console.log(`check-deploy: ${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
