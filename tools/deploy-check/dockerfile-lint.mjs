// Lints microbatch's Dockerfiles (used by check.mjs and scripts/image.sh):
//   node dockerfile-lint.mjs [--repo DIR] [--manifests-dir deploy] FILE...
// Rules (each failure names the file and line):
//  - parses; known instructions; COPY sources exist; RUN'd scripts/ exist and
//    are executable; COPY --from names an earlier stage;
//  - FROM names: a literal image reference, an earlier stage, or exactly one
//    ARG declared before the first FROM with a literal default
//    (`${IMAGE}-slim` string surgery breaks with registry prefixes/digests);
//  - final stage: USER numeric uid:gid, not root, equal to the manifests'
//    runAsUser/runAsGroup/fsGroup; HEALTHCHECK; EXPOSE 8500 8502; its base
//    is not a devel/SDK image and it does not derive from a stage that
//    compiles (the runtime image must not be the build image);
//  - ARG placement: an ARG declared before a stage's dependency layer (the
//    first RUN that installs packages) must be used by that layer, else
//    changing it rebuilds the dependencies for nothing;
//  - C++ ABI: a LibTorch zip's flavour (cxx11-abi or pre-cxx11) agrees with
//    every -D_GLIBCXX_USE_CXX11_ABI= setting, the ABI is set explicitly, and
//    a pre-cxx11 LibTorch (zip, or PyTorch wheels < 2.7) is not mixed with
//    the distribution's C++ libraries (gRPC, protobuf, abseil: cxx11 ABI).
import fs from "node:fs";
import path from "node:path";
import { DockerfileParser } from "dockerfile-ast";
import YAML from "yaml";

const KNOWN = new Set(["FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
  "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"]);
// docker/distribution reference grammar (simplified): [host[:port]/]path[:tag][@digest].
const IMAGE_REF = /^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
const DEPENDENCY_RUN = /apt-get\s+(?:-\S+\s+)*install|install-deps\.sh|pip3?\s+install|apk\s+add|dnf\s+install|yum\s+install/;
const COMPILES = /scripts\/build\.sh|\bcmake\s|\bninja\b|\bmake\s|build-essential|\bg\+\+\s|\bgcc\s/;
const DEVEL_IMAGE = /devel|[-:]sdk\b|-dev(?:$|[-:])/i;
const DISTRO_CXX = /libgrpc\+\+-dev|libprotobuf-dev|libabsl-dev/;

function versionLess(v, major, minor) {
  const [a, b] = v.split(".").map(Number);
  return a < major || (a === major && b < minor);
}

// Returns {failures: [...], passed: N}.
export function lintDockerfile(file, { repo = ".", uid = null, gid = null } = {}) {
  const failures = [];
  let passed = 0;
  const id = path.relative(repo, file) || file;
  const check = (ok, line, message) => (ok ? passed++ : failures.push(`${id}${line ? `:${line}` : ""}: ${message}`));
  const text = fs.readFileSync(file, "utf8");
  const df = DockerfileParser.parse(text);

  const globalArgs = new Map();
  const stages = [];
  let cur = null;
  for (const ins of df.getInstructions()) {
    const kw = ins.getKeyword();
    const line = ins.getRange().start.line + 1;
    const content = ins.getArgumentsContent() ?? "";
    check(KNOWN.has(kw), line, `unknown instruction ${kw}`);
    if (kw === "FROM") {
      const args = ins.getArguments().map((a) => a.getValue()).filter((a) => !a.startsWith("--"));
      const as = args.findIndex((a) => a.toLowerCase() === "as");
      cur = { image: args[0], name: as >= 0 ? args[as + 1] : null, line, ins: [] };
      stages.push(cur);
      continue;
    }
    if (!cur) {
      if (kw === "ARG") {
        const [name, ...rest] = content.split("=");
        globalArgs.set(name.trim(), rest.length ? rest.join("=").trim().replace(/^["']|["']$/g, "") : "");
      } else {
        check(false, line, `${kw} before the first FROM`);
      }
      continue;
    }
    cur.ins.push({ kw, content, line, ins });
  }
  check(stages.length > 0, 0, "no FROM");
  if (stages.length === 0) return { failures, passed };

  // ---- FROM names.
  const stageNames = [];
  for (const st of stages) {
    const img = st.image ?? "";
    if (stageNames.includes(img)) {
      st.parent = stages.find((s) => s.name === img);
    } else if (img.includes("$")) {
      const m = img.match(/^\$(?:\{(\w+)\}|(\w+))$/);
      if (!m) {
        check(false, st.line, `FROM ${img}: builds an image name from an ARG plus text, which breaks with a registry prefix, a tag or a digest in the ARG; use one ARG per image (e.g. BUILD_IMAGE and RUNTIME_IMAGE)`);
      } else {
        const name = m[1] ?? m[2];
        const def = globalArgs.get(name);
        check(def !== undefined, st.line, `FROM ${img}: ARG ${name} is not declared before the first FROM`);
        check(!!def && IMAGE_REF.test(def), st.line, `FROM ${img}: ARG ${name} default '${def ?? ""}' is not an image reference`);
        st.baseImage = def ?? img;
      }
    } else {
      check(IMAGE_REF.test(img), st.line, `FROM ${img}: not an image reference`);
      st.baseImage = img;
    }
    if (st.name) stageNames.push(st.name);
  }

  // ---- Per-stage: ARG placement, COPY sources, RUN scripts.
  for (const st of stages) {
    const depIndex = st.ins.findIndex((i) => i.kw === "RUN" && DEPENDENCY_RUN.test(i.content));
    st.ins.forEach((i, index) => {
      if (i.kw === "ARG" && depIndex >= 0 && index < depIndex) {
        const name = i.content.split("=")[0].trim();
        const used = st.ins.slice(index + 1, depIndex + 1).some((j) => new RegExp(`\\$\\{?${name}\\b`).test(j.content));
        check(used, i.line, `ARG ${name} is declared before the dependency layer (line ${st.ins[depIndex].line}) and not used by it: changing it rebuilds the dependencies; declare it after`);
      }
      if (i.kw === "COPY" || i.kw === "ADD") {
        const from = i.ins.getFromFlag?.()?.getValue();
        const parts = i.ins.getArguments().map((a) => a.getValue());
        if (from) {
          check(stageNames.includes(from) && stages.indexOf(stages.find((s) => s.name === from)) < stages.indexOf(st),
            i.line, `COPY --from=${from} names no earlier stage`);
        } else {
          for (const src of parts.slice(0, -1)) {
            check(fs.existsSync(path.join(repo, src)), i.line, `COPY source ${src} does not exist`);
          }
        }
      }
      if (i.kw === "RUN") {
        for (const m of i.content.matchAll(/(?:^|[\s;&|=])((?:\.\/)?scripts\/[\w.-]+\.sh)/g)) {
          const script = path.join(repo, m[1]);
          check(fs.existsSync(script) && (fs.statSync(script).mode & 0o111) !== 0, i.line,
            `RUN calls ${m[1]}, which is missing or not executable`);
        }
      }
    });
  }

  // ---- A stage that builds with CMake copies every directory the top-level
  // CMakeLists.txt adds (a new one, like common/tensor, must be COPY'd too).
  const cmakeLists = path.join(repo, "CMakeLists.txt");
  if (fs.existsSync(cmakeLists)) {
    const subdirs = [...fs.readFileSync(cmakeLists, "utf8").matchAll(/add_subdirectory\((\S+?)\)/g)].map((m) => m[1]);
    for (const st of stages.filter((s) => s.ins.some((i) => i.kw === "RUN" && COMPILES.test(i.content)))) {
      const copied = st.ins.filter((i) => i.kw === "COPY" && !i.ins.getFromFlag?.())
        .flatMap((i) => i.ins.getArguments().map((a) => a.getValue().replace(/^\.\//, "").replace(/\/$/, "")).slice(0, -1));
      for (const d of subdirs) {
        check(copied.some((c) => c === "." || d === c || d.startsWith(`${c}/`)), st.line,
          `stage ${st.name ?? "?"} builds with CMake but does not COPY ${d} (add_subdirectory in CMakeLists.txt)`);
      }
    }
  }

  // ---- Final stage.
  const final = stages.at(-1);
  const chain = [];
  for (let s = final; s; s = s.parent) chain.push(s);
  const base = chain.at(-1).baseImage ?? "";
  check(!DEVEL_IMAGE.test(base), final.line, `the final stage's base ${base} is a devel/SDK image: use a runtime base`);
  for (const s of chain.slice(1)) {
    check(!s.ins.some((i) => i.kw === "RUN" && COMPILES.test(i.content)), final.line,
      `the final stage derives from stage ${s.name}, which compiles: the runtime image must not be the build image`);
  }
  const lastOf = (kw) => {
    for (const s of chain) {
      const found = s.ins.filter((i) => i.kw === kw).at(-1);
      if (found) return found;
    }
    return null;
  };
  const user = lastOf("USER");
  const um = user?.content.trim().match(/^(\d+):(\d+)$/);
  check(!!um, user?.line ?? final.line, `the final stage's USER must be numeric uid:gid (Kubernetes runAsNonRoot can only verify a numeric user), got '${user?.content.trim() ?? "none"}'`);
  if (um) {
    check(um[1] !== "0" && um[2] !== "0", user.line, `USER ${user.content.trim()} is root`);
    if (uid !== null) check(um[1] === String(uid), user.line, `USER uid ${um[1]} != the manifests' runAsUser ${uid}`);
    if (gid !== null) check(um[2] === String(gid), user.line, `USER gid ${um[2]} != the manifests' runAsGroup/fsGroup ${gid}`);
    const creates = chain.flatMap((s) => s.ins).filter((i) => i.kw === "RUN").map((i) => i.content).join("\n");
    check(new RegExp(`--uid\\s+${um[1]}\\b`).test(creates) && new RegExp(`--gid\\s+${um[2]}\\b`).test(creates), user.line,
      `the final stage does not create user ${um[1]} and group ${um[2]} (useradd --uid, groupadd --gid)`);
  }
  check(!!lastOf("HEALTHCHECK"), final.line, "the final stage has no HEALTHCHECK");
  const exposed = new Set(chain.flatMap((s) => s.ins).filter((i) => i.kw === "EXPOSE").flatMap((i) => i.content.split(/\s+/)));
  check(exposed.has("8500") && exposed.has("8502"), final.line, "the final stage does not EXPOSE 8500 and 8502");

  // ---- C++ ABI.
  const argDefaults = new Map(globalArgs);
  for (const s of stages) for (const i of s.ins) {
    if (i.kw === "ARG") {
      const [n, ...rest] = i.content.split("=");
      if (rest.length) argDefaults.set(n.trim(), rest.join("=").trim().replace(/^["']|["']$/g, ""));
    }
  }
  const expand = (v) => v.replace(/\$\{?(\w+)\}?/g, (all, n) => argDefaults.get(n) ?? all);
  const zips = [...expand(text).matchAll(/https?:\/\/download\.pytorch\.org\/libtorch\/[^\s"')]+\.zip/g)].map((m) => m[0]);
  const settings = [...text.matchAll(/_GLIBCXX_USE_CXX11_ABI=(\$\{?\w+\}?|\d)/g)].map((m) => expand(m[1]));
  const distroCxx = DISTRO_CXX.test(text);
  for (const zip of zips) {
    const name = decodeURIComponent(zip.split("/").at(-1));
    const version = name.match(/-(\d+\.\d+)\.\d+/)?.[1] ?? "0.0";
    // Up to 2.6 both flavours exist and the pre-cxx11 one has no marker;
    // from 2.7 on LibTorch ships the cxx11 ABI only.
    const flavour = /cxx11-abi/.test(name) || !versionLess(version, 2, 7) ? "1" : "0";
    check(settings.length > 0, 0, `downloads ${name} but never sets -D_GLIBCXX_USE_CXX11_ABI explicitly`);
    for (const s of settings) {
      check(s === flavour, 0, `-D_GLIBCXX_USE_CXX11_ABI=${s} disagrees with ${name} (${flavour === "1" ? "cxx11" : "pre-cxx11"} ABI)`);
    }
    check(!(flavour === "0" && distroCxx), 0, `${name} is the pre-cxx11 ABI flavour but the build links the distribution's gRPC/protobuf/abseil (cxx11 ABI): use the libtorch-cxx11-abi zip`);
  }
  for (const s of settings) {
    check(!(s === "0" && distroCxx), 0, `-D_GLIBCXX_USE_CXX11_ABI=0 with the distribution's gRPC/protobuf/abseil (cxx11 ABI)`);
  }
  const wheel = /torch\.utils\.cmake_prefix_path|pip3?\s+install[^\n]*\btorch\b/.test(text);
  if (wheel) {
    const pyImage = stages.map((s) => s.baseImage ?? "").find((b) => /pytorch\/pytorch:/.test(b));
    const v = pyImage?.match(/:(\d+\.\d+)/)?.[1];
    check(!(distroCxx && (!v || versionLess(v, 2, 7))), 0,
      `links the LibTorch of a PyTorch wheel (${pyImage ?? "pip"}: pre-cxx11 ABI before 2.7) with the distribution's gRPC/protobuf/abseil (cxx11 ABI): download the libtorch-cxx11-abi zip instead`);
  }
  return { failures, passed };
}

// uid/gid the manifests run as (deploy/base/deployment.yaml).
export function manifestIds(deployDir) {
  const f = path.join(deployDir, "base", "deployment.yaml");
  if (!fs.existsSync(f)) return { uid: null, gid: null };
  const sc = YAML.parse(fs.readFileSync(f, "utf8"))?.spec?.template?.spec?.securityContext ?? {};
  return { uid: sc.runAsUser ?? null, gid: sc.runAsGroup ?? sc.fsGroup ?? null };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  let repo = ".", ids = { uid: null, gid: null };
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--repo") repo = argv[++i];
    else if (argv[i] === "--manifests-dir") ids = manifestIds(argv[++i]);
    else files.push(argv[i]);
  }
  let failed = 0, passed = 0;
  for (const f of files) {
    const r = lintDockerfile(f, { repo, ...ids });
    for (const m of r.failures) console.log(`dockerfile-lint: FAIL ${m}`);
    failed += r.failures.length;
    passed += r.passed;
  }
  console.log(`dockerfile-lint: ${files.length} Dockerfiles, ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
