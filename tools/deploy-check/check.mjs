// Offline checks of microbatch's deployment files:
//   node check.mjs --manifests a.yaml,b.yaml --dockerfiles Dockerfile,... \
//     [--adapter-rules rules.yaml,...] [--server-help FILE] [--client-help FILE] --repo DIR
// 1. every rendered object validates against the Kubernetes (and
//    prometheus-operator) schemas of kubernetes-models;
// 2. no unknown fields (those schemas accept them, the API server's strict
//    decoding does not): property names are checked against the models'
//    TypeScript interfaces (named, inline, maps, aliases), recursively; a
//    node whose type cannot be resolved is a failure, and a probe adds an
//    unknown field at every object node of every rendered object and
//    requires it to be reported (strict for every kind, by construction);
// 3. Dockerfiles: dockerfile-lint.mjs (FROM names, numeric non-root USER =
//    the manifests' uid:gid, no devel base in the final stage, LibTorch C++
//    ABI, ARG placement, COPY sources, scripts, HEALTHCHECK, EXPOSE);
// 4. cross-references: flags exist in the binaries' --help, probe ports are
//    container ports, the grace period covers preStop + drain + shutdown;
// 5. semantics, one rule per defect that once shipped: the PDB selects the
//    server's pods; GPU pods set a CUDA device and init containers read only
//    paths their image has; batch jobs' --output directory exists; the
//    model repository is a subdirectory of its volume (lost+found) and the
//    init containers fill it; pods run as the image's uid:gid; custom-metric
//    HPAs use metrics an adapter rule serves, rules name exported metrics,
//    and scale-down waits longer than a pod's warm-up.
// Prints one line per failure and a summary; exits 1 on any failure.
import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import YAML from "yaml";
import { lintDockerfile } from "./dockerfile-lint.mjs";

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
const mapNodes = new Set();  // where a map type allows any key (labels, data...)
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
    mapNodes.add(where);
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
  // Strictness probe: an unknown field added to ANY object node of this
  // object (except inside maps) must be reported. Proves that no node is
  // skipped for want of a schema, for every kind rendered.
  const holes = [];
  const walk = (node, where, pathKeys) => {
    if (node === null || typeof node !== "object") return;
    if (Array.isArray(node)) return node.forEach((v, i) => walk(v, `${where}[${i}]`, [...pathKeys, i]));
    if (!mapNodes.has(where)) {
      const clone = structuredClone(obj);
      let n = clone;
      for (const k of pathKeys) n = n[k];
      n.zzProbeUnknownField = 1;
      const mark = failures.length;
      checkFields(clone, root, id);
      const caught = failures.slice(mark).some((f) => f.includes("zzProbeUnknownField"));
      failures.length = mark;
      if (!caught) holes.push(where);
    }
    for (const [k, v] of Object.entries(node)) walk(v, `${where}.${k}`, [...pathKeys, k]);
  };
  walk(obj, id, []);
  check(holes.length === 0, `${id}: strictness probe: an unknown field would be accepted at ${holes.slice(0, 5).join(", ")}`);
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

// ---- Dockerfiles (tools/deploy-check/dockerfile-lint.mjs), with the uid:gid
// the manifests run as.
const deploymentObjs = objects.filter((o) => o.obj.kind === "Deployment");
const podSc = deploymentObjs[0]?.obj.spec?.template?.spec?.securityContext ?? {};
for (const file of (args.dockerfiles ?? "").split(",").filter(Boolean)) {
  const r = lintDockerfile(file, { repo, uid: podSc.runAsUser ?? null, gid: podSc.runAsGroup ?? podSc.fsGroup ?? null });
  failures.push(...r.failures);
  passed += r.passed;
}

// ---- Semantics: each of these caught a defect that once shipped.
const cmdText = (c) => [...(c.command ?? []), ...(c.args ?? [])].join(" ");
const podSpecOf = (obj) => obj.kind === "Deployment" ? obj.spec?.template?.spec
  : obj.kind === "CronJob" ? obj.spec?.jobTemplate?.spec?.template?.spec
  : obj.kind === "Job" ? obj.spec?.template?.spec : null;
const selects = (sel, labels) => !!sel && Object.keys(sel).length > 0
  && Object.entries(sel).every(([k, v]) => labels?.[k] === v);
const mountFor = (c, p) => (c.volumeMounts ?? [])
  .filter((m) => p === m.mountPath || p.startsWith(`${m.mountPath.replace(/\/$/, "")}/`))
  .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
const dockerfileFor = (image) => path.join(repo, /-cuda(@|$)/.test(image ?? "") ? "deploy/docker/Dockerfile.cuda" : "Dockerfile");
// Paths the final stage of a Dockerfile puts in the image (COPY/ADD destinations, WORKDIR, mkdir -p).
function imagePaths(file) {
  if (!fs.existsSync(file)) return [];
  const text = fs.readFileSync(file, "utf8");
  const finalStage = text.split(/^FROM\s/m).at(-1);
  const paths = [];
  for (const m of finalStage.matchAll(/^(?:COPY|ADD)\s[^\n]*?(\/[^\s\]"]*)\s*$/gm)) paths.push(m[1].replace(/\/$/, ""));
  for (const m of finalStage.matchAll(/mkdir\s+(?:-p\s+)?([^&;\n]+)/g)) paths.push(...m[1].trim().split(/\s+/));
  return paths.filter((p) => p.startsWith("/"));
}
const imageProvides = (image, p) => imagePaths(dockerfileFor(image))
  .some((d) => d !== "/" && (p === d || p.startsWith(`${d}/`)));
// Metric names the server exports.
const metricsSource = path.join(repo, "server/service/server_metrics.cc");
const serverMetrics = new Set(fs.existsSync(metricsSource)
  ? [...fs.readFileSync(metricsSource, "utf8").matchAll(/"(microbatch_[a-z_]+)"/g)].map((m) => m[1]) : []);
// prometheus-adapter rules files: strict keys, existing metrics; the names they serve.
const adapterMetrics = new Set();
const ADAPTER_KEYS = {
  top: ["rules", "externalRules", "resourceRules"],
  rule: ["seriesQuery", "seriesFilters", "resources", "name", "metricsQuery"],
  resources: ["overrides", "template"], override: ["resource", "group"], name: ["matches", "as"],
  filter: ["is", "isNot"],
};
const strictKeys = (value, allowed, where) => {
  for (const k of Object.keys(value ?? {})) check(allowed.includes(k), `${where}: unknown field '${k}'`);
};
for (const file of (args["adapter-rules"] ?? "").split(",").filter(Boolean)) {
  const id = path.relative(repo, file);
  const cfg = YAML.parse(fs.readFileSync(file, "utf8")) ?? {};
  strictKeys(cfg, ADAPTER_KEYS.top, id);
  for (const [i, rule] of (cfg.rules ?? []).entries()) {
    const where = `${id}: rules[${i}]`;
    strictKeys(rule, ADAPTER_KEYS.rule, where);
    strictKeys(rule.resources, ADAPTER_KEYS.resources, `${where}.resources`);
    for (const [k, o] of Object.entries(rule.resources?.overrides ?? {})) strictKeys(o, ADAPTER_KEYS.override, `${where}.resources.overrides.${k}`);
    strictKeys(rule.name, ADAPTER_KEYS.name, `${where}.name`);
    for (const [j, f] of (rule.seriesFilters ?? []).entries()) strictKeys(f, ADAPTER_KEYS.filter, `${where}.seriesFilters[${j}]`);
    check(typeof rule.seriesQuery === "string" && typeof rule.metricsQuery === "string", `${where}: seriesQuery and metricsQuery are required`);
    const used = [...`${rule.seriesQuery ?? ""} ${rule.metricsQuery ?? ""}`.matchAll(/\b(microbatch_[a-z_]+?)(?:_bucket|_sum|_count)?\b/g)].map((m) => m[1]);
    for (const m of used) {
      if (serverMetrics.size) check(serverMetrics.has(m), `${where}: ${m} is not a metric the server exports`);
    }
    check(/<<\.LabelMatchers>>/.test(rule.metricsQuery ?? "") && /<<\.GroupBy>>/.test(rule.metricsQuery ?? ""),
      `${where}: metricsQuery must use <<.LabelMatchers>> and <<.GroupBy>> (else every pod gets the same value)`);
    // The PromQL parses: the adapter's templates expanded as it would for a
    // pods metric, checked by promtool (installed with package prometheus).
    if (spawnSync("promtool", ["--version"]).status === 0 && typeof rule.metricsQuery === "string") {
      const seriesName = (rule.seriesQuery ?? "").match(/^\s*([a-zA-Z_:][\w:]*)/)?.[1] ?? "up";
      const expr = rule.metricsQuery.replaceAll("<<.Series>>", seriesName)
        .replaceAll("<<.LabelMatchers>>", 'namespace="ml",pod=~"a|b"').replaceAll("<<.GroupBy>>", "pod");
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "adapter-"));
      fs.writeFileSync(path.join(tmp, "rules.yml"), YAML.stringify({ groups: [{ name: "adapter", rules: [{ record: "adapter_query", expr }] }] }));
      const r = spawnSync("promtool", ["check", "rules", path.join(tmp, "rules.yml")], { encoding: "utf8" });
      check(r.status === 0, `${where}: metricsQuery is not valid PromQL (promtool): ${(r.stdout + r.stderr).split("\n").filter((l) => /error|FAILED/i.test(l)).join(" ")}`);
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    const series = (rule.seriesQuery ?? "").match(/^\s*([a-zA-Z_:][\w:]*)/)?.[1] ?? "";
    let served = series;
    if (rule.name?.matches) served = series.replace(new RegExp(rule.name.matches), rule.name.as ?? "$0");
    adapterMetrics.add(served);
  }
}

const fileIds = [...new Set(objects.map((o) => o.file))];
// uid:gid the image runs as (the CPU Dockerfile's final USER).
const imageUser = (fs.existsSync(path.join(repo, "Dockerfile"))
  ? [...fs.readFileSync(path.join(repo, "Dockerfile"), "utf8").matchAll(/^USER\s+(\d+):(\d+)/gm)].at(-1) : null);
for (const file of fileIds) {
  const objs = objects.filter((o) => o.file === file).map((o) => o.obj);
  const deps = objs.filter((o) => o.kind === "Deployment");
  const flagfileOf = () => objs.filter((o) => o.kind === "ConfigMap")
    .flatMap((o) => (o.data?.flags ?? "").split("\n").map((s) => s.trim()).filter(Boolean));
  for (const obj of objs) {
    const id = `${path.basename(file)}: ${obj.kind}/${obj.metadata?.name}`;
    // 1. PodDisruptionBudget: a selector that selects the server's pods.
    if (obj.kind === "PodDisruptionBudget") {
      const sel = obj.spec?.selector;
      check(!!sel && (Object.keys(sel.matchLabels ?? {}).length > 0 || (sel.matchExpressions ?? []).length > 0),
        `${id}: no selector: a PodDisruptionBudget without a selector protects no pod`);
      if (sel?.matchLabels) {
        check(deps.some((d) => selects(sel.matchLabels, d.spec?.template?.metadata?.labels)),
          `${id}: selector ${JSON.stringify(sel.matchLabels)} selects the pods of no Deployment`);
      }
    }
    // Autoscaling: target exists; custom metrics are served by an adapter
    // rule; scale-down waits longer than a pod's warm-up.
    if (obj.kind === "HorizontalPodAutoscaler") {
      const target = deps.find((d) => d.metadata?.name === obj.spec?.scaleTargetRef?.name);
      check(!!target && obj.spec.scaleTargetRef.kind === "Deployment", `${id}: scaleTargetRef names no Deployment in this overlay`);
      const custom = (obj.spec?.metrics ?? []).filter((m) => ["Pods", "Object", "External"].includes(m.type));
      for (const m of custom) {
        const name = m.pods?.metric?.name ?? m.object?.metric?.name ?? m.external?.metric?.name;
        check(adapterMetrics.has(name), `${id}: metric ${name} is served by no prometheus-adapter rule (--adapter-rules)`);
      }
      if (custom.length && target) {
        const server = target.spec.template.spec.containers[0];
        const sp = server.startupProbe ?? {};
        const warmup = (sp.initialDelaySeconds ?? 0) + (sp.periodSeconds ?? 10) * (sp.failureThreshold ?? 3);
        const down = obj.spec?.behavior?.scaleDown?.stabilizationWindowSeconds;
        check(down !== undefined && down >= warmup,
          `${id}: scaleDown.stabilizationWindowSeconds ${down} < the pods' warm-up budget ${warmup} s (startupProbe): a scale-up could be undone while its pods warm`);
        check(obj.spec?.behavior?.scaleUp?.stabilizationWindowSeconds !== undefined && obj.spec.behavior.scaleUp.policies?.length,
          `${id}: scaleUp has no stabilizationWindowSeconds and policies: a warm-up burst would flap`);
      }
    }
    const podSpec = podSpecOf(obj);
    if (!podSpec) continue;
    // uid:gid: the image's USER is what the pod runs as, and its files' group.
    const sc = podSpec.securityContext ?? {};
    if (imageUser) {
      check(String(sc.runAsUser) === imageUser[1] && String(sc.runAsGroup) === imageUser[2] && String(sc.fsGroup) === imageUser[2],
        `${id}: runs as ${sc.runAsUser}:${sc.runAsGroup} with fsGroup ${sc.fsGroup}; the image's USER is ${imageUser[1]}:${imageUser[2]}`);
    }
    const inits = podSpec.initContainers ?? [];
    // 2. Init containers read only paths their image has; GPU pods put the
    // models on the GPU.
    for (const c of inits) {
      for (const m of cmdText(c).matchAll(/(\/opt\/[\w./-]+?)(?:\/\.)?(?=[\s"';&]|$)/g)) {
        check(imageProvides(c.image, m[1]),
          `${id}: init container ${c.name} reads ${m[1]}, which ${path.relative(repo, dockerfileFor(c.image))} (image ${c.image}) does not contain`);
      }
    }
    const gpu = podSpec.containers.some((c) => c.resources?.limits?.["nvidia.com/gpu"] !== undefined);
    if (gpu) {
      check(inits.some((c) => /device:\s*\\?"?cuda:\d/.test(cmdText(c))),
        `${id}: requests a GPU but sets no CUDA device: the models' config.pbtxt (copied from the CPU demo) run on device "cpu"; write device: "cuda:0" (load-models init container)`);
    }
    for (const c of podSpec.containers) {
      const isClient = (c.command ?? []).some((s) => s.endsWith("/microbatch"));
      if (!isClient) {
        // 4. The model repository is a subdirectory of its volume, and the
        // init containers fill that directory.
        const all = [...(c.args ?? []), ...flagfileOf()];
        const repoPath = all.find((a) => a.startsWith("--model_repository="))?.split("=")[1];
        if (!repoPath) continue;
        const mount = mountFor(c, repoPath);
        check(!!mount, `${id}: --model_repository=${repoPath} is on no volume of container ${c.name}`);
        if (!mount) continue;
        check(repoPath.replace(/\/$/, "") !== mount.mountPath.replace(/\/$/, ""),
          `${id}: --model_repository=${repoPath} is the root of volume '${mount.name}': a freshly formatted volume's lost+found would be in the repository; use a subdirectory (e.g. ${mount.mountPath}/repository)`);
        for (const ic of inits) {
          const im = (ic.volumeMounts ?? []).find((m) => m.name === mount.name);
          if (!im) continue;
          const there = im.mountPath.replace(/\/$/, "") + repoPath.slice(mount.mountPath.replace(/\/$/, "").length);
          check(cmdText(ic).includes(there), `${id}: init container ${ic.name} mounts '${mount.name}' but does not fill ${there}, the repository the server reads`);
        }
        continue;
      }
      // 3. Batch clients: --output's directory exists before the client runs.
      if (!(c.args ?? []).includes("batch")) continue;
      const out = flagValue(c.args ?? [], "output");
      if (!out) continue;
      const dir = path.posix.dirname(out);
      const mount = mountFor(c, dir);
      check(!!mount, `${id}: --output ${out} is on no volume (read-only root filesystem)`);
      if (!mount || dir === mount.mountPath.replace(/\/$/, "")) continue;
      const made = inits.some((ic) => {
        const im = (ic.volumeMounts ?? []).find((m) => m.name === mount.name);
        if (!im) return false;
        const there = im.mountPath.replace(/\/$/, "") + dir.slice(mount.mountPath.replace(/\/$/, "").length);
        return /\bmkdir\b/.test(cmdText(ic)) && /(^|\s)-p(\s|$)/.test(cmdText(ic)) && cmdText(ic).split(/\s+/).includes(there);
      });
      check(made, `${id}: --output ${out}: directory ${dir} does not exist on a new volume and no init container creates it (mkdir -p ${dir})`);
    }
  }
}

for (const f of failures) console.log(`check-deploy: FAIL ${f}`);
console.log(`check-deploy: ${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
