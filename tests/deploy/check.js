// tests/deploy/check.js -- checks that the image, the Kubernetes manifests, compose.yaml and
// docs/operations.md fit each other and fit the server: schemas, probe paths and ports,
// drain timing, thread count, settings names, metric names. Run by tests/deploy/check.sh,
// which installs the npm packages this needs and picks a kubectl; see that file for usage.
'use strict';

const fs = require('fs');
const path = require('path');
const cp = require('child_process');
const http = require('http');
const net = require('net');
const { createRequire } = require('module');

const opts = parse_args(process.argv.slice(2));
const root = opts.root;
const from_cache = createRequire(path.join(opts.cache, 'package.json'));
const YAML = from_cache('yaml');
const ts = from_cache('typescript');

// The metric families the server promises (docs/operations.md builds its alerts on them).
const promised_metrics = [
  'neptun_http_requests_total', 'neptun_http_request_duration_seconds',
  'neptun_open_connections', 'neptun_connections_refused_total', 'process_start_time_seconds',
  'neptun_redis_commands_total', 'neptun_redis_errors_total', 'neptun_redis_reconnects_total',
  'neptun_redis_up', 'neptun_redis_command_duration_seconds', 'neptun_pg_connections',
  'neptun_pg_waiting', 'neptun_pg_errors_total', 'neptun_pg_statement_duration_seconds',
  'neptun_pg_up', 'neptun_ready',
];
// Kubernetes takes endpoints out of load balancers asynchronously after a pod starts to
// terminate; the pod must keep serving at least this long (delay or preStop).
const min_endpoint_propagation_ms = 5000;
// Time between the forced-exit deadline and the kubelet's SIGKILL that we insist on.
const grace_margin_ms = 2000;
// Share of the memory limit that worst-case request buffers may take.
const buffer_memory_share = 0.75;
// The live run shortens the drain delay so the test stays quick.
const live_shutdown_delay_ms = 1500;

// ---------------------------------------------------------------------------------------
// Results

const results = [];

function record(name, outcome) {
  results.push({ name, ...outcome });
  const tag = outcome.skip ? 'skip' : outcome.problems.length ? 'FAIL' : 'ok  ';
  let line = `${tag} ${name}`;
  if (outcome.skip) line += ` (${outcome.skip})`;
  else if (!outcome.problems.length && outcome.note) line += ` (${outcome.note})`;
  if (outcome.ms > 500) line += ` [${(outcome.ms / 1000).toFixed(1)} s]`;
  console.log(line);
  for (const p of outcome.problems || []) console.log(`       - ${p}`);
}

// check(name, fn): fn returns a list of problems (empty: passed), or {skip: reason}, or
// {problems, note}; it may be async. A throw is a failure too.
async function check(name, fn) {
  const t0 = Date.now();
  try {
    const r = await fn();
    const ms = Date.now() - t0;
    if (r && r.skip) return record(name, { skip: r.skip, problems: [] });
    if (Array.isArray(r)) return record(name, { problems: r, ms });
    return record(name, { problems: (r && r.problems) || [], note: r && r.note, ms });
  } catch (e) {
    return record(name, { problems: [String(e && e.stack ? e.message : e)], ms: Date.now() - t0 });
  }
}

// ---------------------------------------------------------------------------------------
// Helpers

function parse_args(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '').replace(/-/g, '_');
    o[k] = argv[i + 1];
  }
  for (const k of ['root', 'cache', 'kubectl', 'help_file']) {
    if (!o[k]) throw new Error(`check.js: --${k.replace(/_/g, '-')} is required`);
  }
  for (const k of ['root', 'cache', 'help_file', 'binary']) if (o[k]) o[k] = path.resolve(o[k]);
  return o;
}

const read = (rel) => fs.readFileSync(path.join(root, rel), 'utf8');

function port_of(address) {
  const m = /:(\d+)$/.exec(String(address || ''));
  return m ? Number(m[1]) : undefined;
}

// Kubernetes resource quantities: "2", "500m", "512Mi", "1G", "1e3".
function quantity(q) {
  if (typeof q === 'number') return q;
  const m = /^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|u|n|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(String(q));
  if (!m) return NaN;
  const scale = {
    undefined: 1, m: 1e-3, u: 1e-6, n: 1e-9, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
    Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
  }[m[2]];
  return Number(m[1]) * scale;
}

const matches = (selector, labels) =>
  !!selector && !!labels && Object.entries(selector).every(([k, v]) => labels[k] === v);

// A LabelSelector (matchLabels and matchExpressions) against a pod's labels.
function label_selector_matches(sel, labels) {
  if (!sel || !labels) return false;
  const has = (k) => Object.prototype.hasOwnProperty.call(labels, k);
  const expression = ({ key, operator, values = [] }) => ({
    In: has(key) && values.includes(labels[key]),
    NotIn: !has(key) || !values.includes(labels[key]),
    Exists: has(key),
    DoesNotExist: !has(key),
  })[operator];
  return matches(sel.matchLabels || {}, labels) && (sel.matchExpressions || []).every(expression);
}

// ---------------------------------------------------------------------------------------
// The server's --help: every setting as "--flag, NEPTUN_NAME (default VALUE)".

function load_help() {
  const text = fs.readFileSync(opts.help_file, 'utf8');
  const names = new Set(text.match(/\bNEPTUN_[A-Z0-9_]+\b/g) || []);
  const defaults = new Map();
  const flags = new Map();
  const re = /(--[a-z0-9-]+),\s*(NEPTUN_[A-Z0-9_]+)(?:\s*\(default:?\s*([^)]*)\))?/g;
  let m;
  while ((m = re.exec(text))) {
    flags.set(m[2], m[1]);
    if (m[3] !== undefined) defaults.set(m[2], m[3].trim());
  }
  return { text, names, defaults, flags };
}

// ---------------------------------------------------------------------------------------
// Dockerfile

function parse_dockerfile(text) {
  const joined = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const args = {};
  const stages = [];
  for (const raw of joined.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^(\S+)\s*(.*)$/.exec(line);
    const cmd = m[1].toUpperCase();
    const rest = m[2];
    if (cmd === 'ARG' && !stages.length) {
      const [k, v] = rest.split('=');
      args[k.trim()] = (v || '').trim();
      continue;
    }
    if (cmd === 'FROM') {
      const f = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?/i.exec(rest);
      const image = f[1].replace(/\$\{?(\w+)\}?/g, (_, k) => args[k] ?? '');
      stages.push({ image, name: f[2] || String(stages.length), instructions: [] });
      continue;
    }
    if (stages.length) stages[stages.length - 1].instructions.push({ cmd, rest });
  }
  return { stages };
}

function docker_image_facts(help) {
  const text = read('deploy/Dockerfile');
  const { stages } = parse_dockerfile(text);
  const final = stages[stages.length - 1];
  const all = (stage, cmd) => (stage ? stage.instructions.filter((i) => i.cmd === cmd) : []);
  const user = all(final, 'USER').pop();
  const uid = user && /^\d+(:\d+)?$/.test(user.rest.trim()) ? Number(user.rest.split(':')[0]) : user ? user.rest.trim() : undefined;
  const exposed = all(final, 'EXPOSE').flatMap((i) => i.rest.split(/\s+/).map((p) => Number(p.split('/')[0])));
  const ep = all(final, 'ENTRYPOINT').pop();
  let entrypoint;
  try { entrypoint = ep && JSON.parse(ep.rest); } catch { entrypoint = ep && ep.rest; }
  const cmdi = all(final, 'CMD').pop();
  let cmd;
  try { cmd = cmdi && JSON.parse(cmdi.rest); } catch { cmd = cmdi && cmdi.rest; }
  return { text, stages, final, all, uid, exposed, entrypoint, cmd, help };
}

// ---------------------------------------------------------------------------------------
// Kubernetes objects: schema (kubernetes-models' validators), known fields (the TypeScript
// declarations of kubernetes-models, walked with the type checker), then the links.

function model_module(obj) {
  return `kubernetes-models/${obj.apiVersion}/${obj.kind}`;
}

function schema_problems(objs) {
  const problems = [];
  for (const o of objs) {
    const id = `${o.kind}/${o.metadata && o.metadata.name}`;
    let Model;
    try {
      Model = from_cache(model_module(o))[o.kind];
    } catch {
      problems.push(`${id}: no schema for apiVersion ${o.apiVersion} kind ${o.kind}`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (e) {
      problems.push(`${id}: ${e.message}`);
    }
  }
  return problems;
}

// Unknown fields: the API server rejects them (kubectl apply validates strictly) or, worse,
// drops them silently; a field at the wrong indentation is the usual way to get one.
// One type-checker program per set of kinds (the overlays share theirs): building it is the
// slow part.
const type_programs = new Map();

function kind_types(modules, workdir) {
  const key = modules.join('\n');
  if (type_programs.has(key)) return type_programs.get(key);
  fs.mkdirSync(workdir, { recursive: true });
  const file = path.join(workdir, `kinds-${type_programs.size}.ts`);
  fs.writeFileSync(file, modules.map((m, i) =>
    `declare const k${i}: import(${JSON.stringify(m)}).I${m.split('/').pop()};\n`).join(''));
  const program = ts.createProgram([file], {
    strict: true, noEmit: true, skipLibCheck: true, types: [],
    target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
  });
  const decls = new Map();
  program.getSourceFile(file).statements.forEach((st, i) => decls.set(modules[i], st.declarationList.declarations[0]));
  const diagnostics = ts.getPreEmitDiagnostics(program).map(
    (d) => `type declarations: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`);
  const entry = { checker: program.getTypeChecker(), decls, diagnostics };
  type_programs.set(key, entry);
  return entry;
}

// Unknown fields: the API server rejects them (kubectl apply validates strictly) or, worse,
// drops them silently; a field at the wrong indentation is the usual way to get one.
function unknown_field_problems(objs, workdir) {
  const known = objs.filter((o) => {
    try { from_cache.resolve(model_module(o)); return true; } catch { return false; }
  });
  const modules = [...new Set(known.map(model_module))].sort();
  const { checker, decls, diagnostics } = kind_types(modules, workdir);
  const problems = [...diagnostics];

  const members = (t) => {
    const n = checker.getNonNullableType(t);
    return n.isUnion() ? n.types : [n];
  };
  const walk = (value, type, where, node) => {
    if (value === null || typeof value !== 'object') return;
    const ms = members(type);
    if (ms.some((m) => m.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown))) return;
    if (Array.isArray(value)) {
      const arr = ms.find((m) => checker.isArrayType(m));
      if (!arr) return problems.push(`${where}: a list where ${checker.typeToString(type)} belongs`);
      const el = checker.getTypeArguments(arr)[0];
      value.forEach((x, i) => walk(x, el, `${where}[${i}]`, node));
      return;
    }
    const objects = ms.filter((m) => m.flags & ts.TypeFlags.Object && !checker.isArrayType(m));
    if (!objects.length) return problems.push(`${where}: an object where ${checker.typeToString(type)} belongs`);
    for (const [k, v] of Object.entries(value)) {
      let t;
      for (const m of objects) {
        const prop = checker.getPropertyOfType(m, k);
        if (prop) { t = checker.getTypeOfSymbolAtLocation(prop, node); break; }
        const index = checker.getIndexTypeOfType(m, ts.IndexKind.String);
        if (index) { t = index; break; }
      }
      if (!t) {
        problems.push(`${where}.${k}: unknown field (${objects.map((m) => checker.typeToString(m)).join(' | ')} has no such field)`);
        continue;
      }
      walk(v, t, `${where}.${k}`, node);
    }
  };
  for (const o of known) {
    const decl = decls.get(model_module(o));
    walk(o, checker.getTypeAtLocation(decl.name), `${o.kind}/${o.metadata.name}`, decl);
  }
  return problems;
}

// The facts of one rendered overlay that the link checks look at.
function overlay_facts(objs, help) {
  const of_kind = (k) => objs.filter((o) => o.kind === k);
  const dep = of_kind('Deployment')[0];
  const job = of_kind('Job')[0];
  const pod = dep && dep.spec.template.spec;
  const ctr = pod && (pod.containers.find((c) => c.name === 'neptun-api') || pod.containers[0]);
  const jpod = job && job.spec.template.spec;
  const jctr = jpod && jpod.containers[0];
  const configmaps = of_kind('ConfigMap');
  const cm_of = (c) => {
    const data = {};
    const missing = [];
    for (const ef of (c && c.envFrom) || []) {
      if (!ef.configMapRef) continue;
      const cm = configmaps.find((m) => m.metadata.name === ef.configMapRef.name);
      if (!cm) missing.push(ef.configMapRef.name);
      else Object.assign(data, cm.data || {});
    }
    return { data, missing };
  };
  const cm = cm_of(ctr);
  const env_literal = {};
  for (const e of (ctr && ctr.env) || []) if (e.value !== undefined) env_literal[e.name] = e.value;
  // What the server would see, with --help's defaults for what is unset.
  const setting = (name) => {
    if (env_literal[name] !== undefined) return env_literal[name];
    if (cm.data[name] !== undefined) return cm.data[name];
    return help.defaults.get(name);
  };
  const ports = {};
  for (const p of (ctr && ctr.ports) || []) ports[p.name] = p.containerPort;
  const resolve_port = (p) => (typeof p === 'number' ? p : ports[p]);
  return {
    objs, of_kind, dep, job, pod, ctr, jpod, jctr, cm, cm_of, env_literal, setting, ports, resolve_port,
    api_port: port_of(setting('NEPTUN_LISTEN')),
    admin_port: port_of(setting('NEPTUN_ADMIN_LISTEN')),
    pod_labels: dep && dep.spec.template.metadata.labels,
    job_labels: job && job.spec.template.metadata.labels,
  };
}

function env_from_secret(c, name) {
  const e = ((c && c.env) || []).find((x) => x.name === name);
  return e && e.valueFrom && e.valueFrom.secretKeyRef;
}

function security_problems(what, pod, c, image_uid) {
  const p = [];
  const psc = pod.securityContext || {};
  const csc = c.securityContext || {};
  const eff = (k) => (csc[k] !== undefined ? csc[k] : psc[k]);
  if (eff('runAsNonRoot') !== true) p.push(`${what}: runAsNonRoot is not true`);
  const uid = eff('runAsUser');
  if (!(Number.isInteger(uid) && uid > 0)) p.push(`${what}: runAsUser ${uid} is not a numeric non-root uid`);
  else if (image_uid !== undefined && uid !== image_uid) p.push(`${what}: runAsUser ${uid} differs from the image's USER ${image_uid}`);
  if (csc.readOnlyRootFilesystem !== true) p.push(`${what}: readOnlyRootFilesystem is not true`);
  if (csc.allowPrivilegeEscalation !== false) p.push(`${what}: allowPrivilegeEscalation is not false`);
  if (csc.privileged) p.push(`${what}: privileged`);
  const drop = (csc.capabilities && csc.capabilities.drop) || [];
  if (!drop.includes('ALL')) p.push(`${what}: capabilities.drop does not hold ALL`);
  if (csc.capabilities && (csc.capabilities.add || []).length) p.push(`${what}: adds capabilities ${csc.capabilities.add}`);
  const seccomp = (csc.seccompProfile || psc.seccompProfile || {}).type;
  if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') p.push(`${what}: no RuntimeDefault seccomp profile`);
  if (pod.automountServiceAccountToken !== false) p.push(`${what}: automountServiceAccountToken is not false`);
  if (pod.enableServiceLinks !== false) p.push(`${what}: enableServiceLinks is not false (a Service named neptun-api injects NEPTUN_API_* variables)`);
  for (const k of ['hostNetwork', 'hostPID', 'hostIPC']) if (pod[k]) p.push(`${what}: ${k}`);
  return p;
}

// preStop time in ms: `exec: sleep N` or the `sleep` action.
function prestop_ms(c) {
  const ps = c.lifecycle && c.lifecycle.preStop;
  if (!ps) return 0;
  if (ps.sleep) return ps.sleep.seconds * 1000;
  if (ps.exec) {
    const m = /\bsleep\s+(\d+(?:\.\d+)?)/.exec(ps.exec.command.join(' '));
    if (m) return Number(m[1]) * 1000;
  }
  return 0;
}

async function check_overlay(name, dir, help, image) {
  const prefix = `k8s ${name}:`;
  const rendered = path.join(opts.cache, 'rendered', `${name}.yaml`);
  let objs;
  await check(`${prefix} kustomize renders`, () => {
    const r = cp.spawnSync(opts.kubectl, ['kustomize', dir], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.error) return [`${opts.kubectl}: ${r.error.message}`];
    const stderr = r.stderr.split('\n').filter((l) => l && !/^# Warning: '\w+' is deprecated/.test(l)).join('\n');
    if (r.status !== 0) return [`kubectl kustomize ${path.relative(root, dir)} exited ${r.status}: ${stderr}`];
    fs.mkdirSync(path.dirname(rendered), { recursive: true });
    fs.writeFileSync(rendered, r.stdout);
    const docs = YAML.parseAllDocuments(r.stdout);
    const errors = docs.flatMap((d) => d.errors.map((e) => e.message));
    if (errors.length) return errors;
    objs = docs.map((d) => d.toJS()).filter(Boolean);
    return { problems: [], note: `${objs.length} objects, ${path.relative(root, rendered)}` };
  });
  if (!objs) return;

  await check(`${prefix} every object is valid against the Kubernetes API schema`, () => schema_problems(objs));
  await check(`${prefix} no unknown fields`, () => unknown_field_problems(objs, path.join(opts.cache, 'types')));

  const f = overlay_facts(objs, help);
  await check(`${prefix} holds the expected objects`, () => {
    const p = [];
    for (const k of ['ServiceAccount', 'ConfigMap', 'Deployment', 'Service', 'HorizontalPodAutoscaler',
      'PodDisruptionBudget', 'NetworkPolicy', 'Job']) {
      const n = f.of_kind(k).length;
      if (n !== 1) p.push(`${n} ${k} objects, expected 1`);
    }
    if (f.of_kind('Secret').length) p.push('a Secret is rendered: credentials must not live in the repository');
    const ns = new Set(objs.map((o) => o.metadata.namespace));
    if (ns.size !== 1 || ns.has(undefined)) p.push(`objects are not all in one namespace: ${[...ns]}`);
    const accounts = f.of_kind('ServiceAccount').map((a) => a.metadata.name);
    for (const [what, pod] of [['Deployment', f.pod], ['Job', f.jpod]]) {
      if (pod && pod.serviceAccountName && !accounts.includes(pod.serviceAccountName)) p.push(`${what} runs as ServiceAccount ${pod.serviceAccountName}, which is not rendered`);
    }
    if (!f.dep || !f.ctr) p.push('no Deployment container to check');
    if (!f.job || !f.jctr) p.push('no Job container to check');
    return p;
  });
  if (!f.dep || !f.ctr || !f.job || !f.jctr) return;

  await check(`${prefix} settings names exist in the server (neptun-api --help)`, () => {
    const p = [];
    const names = new Map();
    for (const [what, c] of [['Deployment', f.ctr], ['Job', f.jctr]]) {
      for (const e of c.env || []) names.set(e.name, `${what} env`);
      const cm = f.cm_of(c);
      for (const m of cm.missing) p.push(`${what} envFrom names ConfigMap ${m}, which is not rendered`);
      for (const k of Object.keys(cm.data)) names.set(k, `${what} envFrom ConfigMap`);
    }
    for (const [n, where] of names) {
      if (!/^NEPTUN_/.test(n)) p.push(`${n} (${where}) is not a NEPTUN_ setting`);
      else if (!help.names.has(n)) p.push(`${n} (${where}) is not a setting of the server`);
    }
    for (const e of f.ctr.env || []) {
      if (f.cm.data[e.name] !== undefined) p.push(`${e.name} is set both in the ConfigMap and in env (env wins; keep one)`);
    }
    return p;
  });

  await check(`${prefix} store URLs come from the Secret, not the ConfigMap`, () => {
    const p = [];
    const r = env_from_secret(f.ctr, 'NEPTUN_REDIS_URL');
    const d = env_from_secret(f.ctr, 'NEPTUN_DATABASE_URL');
    const j = env_from_secret(f.jctr, 'NEPTUN_DATABASE_URL');
    if (!r) p.push('Deployment: NEPTUN_REDIS_URL is not a secretKeyRef');
    if (!d) p.push('Deployment: NEPTUN_DATABASE_URL is not a secretKeyRef');
    if (!j) p.push('Job: NEPTUN_DATABASE_URL is not a secretKeyRef');
    if (d && j && (d.name !== j.name || d.key !== j.key)) p.push(`Job reads the database URL from ${j.name}/${j.key}, the Deployment from ${d.name}/${d.key}`);
    for (const ref of [r, d, j]) if (ref && ref.optional) p.push(`secretKeyRef ${ref.name}/${ref.key} is optional: a missing Secret would silently fall back to loopback defaults`);
    for (const cm of f.of_kind('ConfigMap')) {
      for (const [k, v] of Object.entries(cm.data || {})) {
        if (/_URL$/.test(k) || /:\/\/[^/\s]*@/.test(v)) p.push(`ConfigMap ${cm.metadata.name} holds ${k}: URLs with credentials belong in the Secret`);
      }
    }
    return p;
  });

  await check(`${prefix} ports match the server's listeners and the image`, () => {
    const p = [];
    if (f.ports.http !== f.api_port) p.push(`container port "http" is ${f.ports.http}, NEPTUN_LISTEN says ${f.setting('NEPTUN_LISTEN')}`);
    if (f.ports.admin !== f.admin_port) p.push(`container port "admin" is ${f.ports.admin}, NEPTUN_ADMIN_LISTEN says ${f.setting('NEPTUN_ADMIN_LISTEN')}`);
    for (const [n, port] of Object.entries(f.ports)) {
      if (!image.exposed.includes(port)) p.push(`container port ${n} ${port} is not EXPOSEd by deploy/Dockerfile (${image.exposed})`);
    }
    for (const [n, addr] of [['NEPTUN_LISTEN', f.setting('NEPTUN_LISTEN')], ['NEPTUN_ADMIN_LISTEN', f.setting('NEPTUN_ADMIN_LISTEN')]]) {
      if (!/^(0\.0\.0\.0|\[::\]):/.test(addr || '')) p.push(`${n}=${addr}: a pod's listener must bind all interfaces, or probes and peers cannot reach it`);
    }
    const svc = f.of_kind('Service')[0];
    for (const sp of svc.spec.ports) {
      const target = f.resolve_port(sp.targetPort === undefined ? sp.port : sp.targetPort);
      if (target === undefined) p.push(`Service port ${sp.name} targets ${sp.targetPort}, which no container port is`);
      else if (target !== f.api_port) p.push(`Service port ${sp.name} publishes ${target}; only the API port ${f.api_port} belongs in the Service`);
    }
    return p;
  });

  await check(`${prefix} probes use /readyz and /livez on the admin port`, () => {
    const p = [];
    for (const [kind, want] of [['readinessProbe', '/readyz'], ['livenessProbe', '/livez']]) {
      const probe = f.ctr[kind];
      if (!probe || !probe.httpGet) { p.push(`${kind} is not an httpGet probe`); continue; }
      if (probe.httpGet.path !== want) p.push(`${kind} path is ${probe.httpGet.path}, the server serves ${want}`);
      const port = f.resolve_port(probe.httpGet.port);
      if (port !== f.admin_port) p.push(`${kind} port ${probe.httpGet.port} is not the admin port ${f.admin_port}`);
      if (probe.httpGet.scheme && probe.httpGet.scheme !== 'HTTP') p.push(`${kind} scheme ${probe.httpGet.scheme}: the admin port speaks plain HTTP`);
    }
    if (f.ctr.startupProbe && f.ctr.startupProbe.httpGet && f.ctr.startupProbe.httpGet.path !== '/livez') p.push('startupProbe should use /livez');
    return p;
  });

  await check(`${prefix} Prometheus scrapes /metrics on the admin port`, () => {
    const a = f.dep.spec.template.metadata.annotations || {};
    const p = [];
    if (a['prometheus.io/scrape'] !== 'true') p.push('pod annotation prometheus.io/scrape is not "true"');
    if (Number(a['prometheus.io/port']) !== f.admin_port) p.push(`prometheus.io/port is ${a['prometheus.io/port']}, the admin port is ${f.admin_port}`);
    if ((a['prometheus.io/path'] || '/metrics') !== '/metrics') p.push(`prometheus.io/path is ${a['prometheus.io/path']}`);
    return p;
  });

  await check(`${prefix} the drain fits in terminationGracePeriodSeconds`, () => {
    const p = [];
    const grace = (f.pod.terminationGracePeriodSeconds ?? 30) * 1000;
    const pre = prestop_ms(f.ctr);
    const delay = Number(f.setting('NEPTUN_SHUTDOWN_DELAY_MS'));
    const timeout = Number(f.setting('NEPTUN_SHUTDOWN_TIMEOUT_MS'));
    const handler = Number(f.setting('NEPTUN_HANDLER_TIMEOUT_MS'));
    const write = Number(f.setting('NEPTUN_WRITE_TIMEOUT_MS'));
    for (const [n, v] of [['NEPTUN_SHUTDOWN_DELAY_MS', delay], ['NEPTUN_SHUTDOWN_TIMEOUT_MS', timeout],
      ['NEPTUN_HANDLER_TIMEOUT_MS', handler], ['NEPTUN_WRITE_TIMEOUT_MS', write]]) {
      if (!Number.isFinite(v)) p.push(`${n} has no numeric value (not in the ConfigMap, no default in --help)`);
    }
    if (p.length) return p;
    const need = pre + delay + timeout + grace_margin_ms;
    if (need > grace) p.push(`preStop ${pre} ms + NEPTUN_SHUTDOWN_DELAY_MS ${delay} + NEPTUN_SHUTDOWN_TIMEOUT_MS ${timeout} + margin ${grace_margin_ms} = ${need} ms > terminationGracePeriodSeconds ${grace / 1000} s: the kubelet kills the pod mid-drain`);
    if (pre + delay < min_endpoint_propagation_ms) p.push(`the pod keeps serving only ${pre + delay} ms after SIGTERM (preStop + NEPTUN_SHUTDOWN_DELAY_MS); endpoints take seconds to forget it, allow at least ${min_endpoint_propagation_ms} ms`);
    if (timeout < handler + write) p.push(`NEPTUN_SHUTDOWN_TIMEOUT_MS ${timeout} < NEPTUN_HANDLER_TIMEOUT_MS ${handler} + NEPTUN_WRITE_TIMEOUT_MS ${write}: a request in flight may be cut off`);
    return { problems: p, note: `preStop ${pre} + delay ${delay} + timeout ${timeout} + margin ${grace_margin_ms} <= grace ${grace} ms` };
  });

  await check(`${prefix} NEPTUN_THREADS follows the CPU limit`, () => {
    const p = [];
    const e = (f.ctr.env || []).find((x) => x.name === 'NEPTUN_THREADS');
    const ref = e && e.valueFrom && e.valueFrom.resourceFieldRef;
    if (!ref) return ['NEPTUN_THREADS is not set from resourceFieldRef limits.cpu'];
    if (ref.resource !== 'limits.cpu') p.push(`NEPTUN_THREADS comes from ${ref.resource}, not limits.cpu`);
    if (ref.containerName && ref.containerName !== f.ctr.name) p.push(`resourceFieldRef names container ${ref.containerName}, not ${f.ctr.name}`);
    if (ref.divisor !== undefined && quantity(ref.divisor) !== 1) p.push(`divisor ${ref.divisor}: threads must count whole cores`);
    const res = f.ctr.resources || {};
    const lim = (res.limits || {}).cpu;
    const req = (res.requests || {}).cpu;
    if (lim === undefined) p.push('no CPU limit: NEPTUN_THREADS would be the node\'s core count');
    else if (!Number.isInteger(quantity(lim)) || quantity(lim) < 1) p.push(`CPU limit ${lim} is not a whole number of cores: threads (rounded up) would exceed the CPU quota`);
    if (req !== undefined && lim !== undefined && quantity(req) !== quantity(lim)) p.push(`CPU request ${req} != limit ${lim}: a thread-per-core server wants Guaranteed QoS`);
    const mreq = (res.requests || {}).memory;
    const mlim = (res.limits || {}).memory;
    if (mlim === undefined) p.push('no memory limit');
    else if (mreq !== undefined && quantity(mreq) !== quantity(mlim)) p.push(`memory request ${mreq} != limit ${mlim}: not Guaranteed QoS`);
    return { problems: p, note: `${lim} cores -> ${Math.ceil(quantity(lim))} threads` };
  });

  await check(`${prefix} pods are non-root, read-only, unprivileged`, () => [
    ...security_problems('Deployment', f.pod, f.ctr, image.uid),
    ...security_problems('Job', f.jpod, f.jctr, image.uid),
  ]);

  await check(`${prefix} selectors pick the server pods and not the migration pods`, () => {
    const p = [];
    const sel = f.dep.spec.selector;
    if (!label_selector_matches(sel, f.pod_labels)) p.push('the Deployment selector does not match its own pod template');
    const pick = [
      ['Deployment', sel],
      ['Service', { matchLabels: f.of_kind('Service')[0].spec.selector }],
      ['PodDisruptionBudget', f.of_kind('PodDisruptionBudget')[0].spec.selector],
      ['NetworkPolicy', f.of_kind('NetworkPolicy')[0].spec.podSelector],
    ];
    for (const [what, s] of pick) {
      if (!label_selector_matches(s, f.pod_labels)) p.push(`the ${what} selector does not match the server pods`);
      if (label_selector_matches(s, f.job_labels)) p.push(`the ${what} selector also matches the migration Job's pods`);
    }
    const spread = f.pod.topologySpreadConstraints || [];
    if (!spread.length) p.push('no topologySpreadConstraints');
    for (const t of spread) if (!label_selector_matches(t.labelSelector, f.pod_labels)) p.push(`topology spread on ${t.topologyKey} does not select the server pods`);
    if (!spread.some((t) => t.topologyKey === 'kubernetes.io/hostname')) p.push('pods are not spread across nodes (kubernetes.io/hostname)');
    return p;
  });

  await check(`${prefix} the HorizontalPodAutoscaler scales the Deployment on CPU`, () => {
    const p = [];
    const hpa = f.of_kind('HorizontalPodAutoscaler')[0].spec;
    const t = hpa.scaleTargetRef;
    if (t.kind !== 'Deployment' || t.name !== f.dep.metadata.name || t.apiVersion !== 'apps/v1') p.push(`scaleTargetRef ${t.apiVersion} ${t.kind}/${t.name} is not the Deployment ${f.dep.metadata.name}`);
    const cpu = (hpa.metrics || []).find((m) => m.type === 'Resource' && m.resource.name === 'cpu');
    if (!cpu) p.push('no CPU resource metric');
    else if (cpu.resource.target.type === 'Utilization' && !((f.ctr.resources || {}).requests || {}).cpu) p.push('CPU utilization needs a CPU request');
    if (f.dep.spec.replicas !== undefined) p.push('the Deployment sets replicas: every apply would fight the autoscaler');
    if ((hpa.minReplicas ?? 1) < 2) p.push(`minReplicas ${hpa.minReplicas ?? 1}: one pod is one outage away from none`);
    if (hpa.maxReplicas < (hpa.minReplicas ?? 1)) p.push('maxReplicas < minReplicas');
    return { problems: p, note: `${hpa.minReplicas}..${hpa.maxReplicas} replicas` };
  });

  await check(`${prefix} the PodDisruptionBudget lets node drains proceed`, () => {
    const p = [];
    const pdb = f.of_kind('PodDisruptionBudget')[0].spec;
    const min = f.of_kind('HorizontalPodAutoscaler')[0].spec.minReplicas ?? 1;
    const pct = (v) => (typeof v === 'string' && v.endsWith('%') ? Number(v.slice(0, -1)) / 100 : null);
    if (pdb.maxUnavailable !== undefined) {
      const v = pct(pdb.maxUnavailable) !== null ? Math.ceil(pct(pdb.maxUnavailable) * min) : pdb.maxUnavailable;
      if (!(v >= 1)) p.push(`maxUnavailable ${pdb.maxUnavailable} allows no eviction at ${min} replicas`);
    } else if (pdb.minAvailable !== undefined) {
      const v = pct(pdb.minAvailable) !== null ? Math.ceil(pct(pdb.minAvailable) * min) : pdb.minAvailable;
      if (v >= min) p.push(`minAvailable ${pdb.minAvailable} allows no eviction at ${min} replicas`);
    } else p.push('neither maxUnavailable nor minAvailable');
    if (pdb.unhealthyPodEvictionPolicy !== 'AlwaysAllow') p.push('unhealthyPodEvictionPolicy is not AlwaysAllow: a store outage (every pod unready) would block node drains');
    return p;
  });

  await check(`${prefix} the NetworkPolicy admits the API from ingress and the admin port from monitoring only`, () => {
    const p = [];
    const np = f.of_kind('NetworkPolicy')[0].spec;
    if (!(np.policyTypes || []).includes('Ingress')) p.push('policyTypes lacks Ingress');
    const sources = new Map();  // port -> [namespace selector as text]
    for (const [i, rule] of (np.ingress || []).entries()) {
      if (!rule.ports || !rule.ports.length) { p.push(`ingress rule ${i} admits every port`); continue; }
      if (!rule.from || !rule.from.length) { p.push(`ingress rule ${i} admits every source`); continue; }
      for (const peer of rule.from) {
        const ns = peer.namespaceSelector;
        if (peer.ipBlock || !ns || !Object.keys(ns.matchLabels || {}).length) p.push(`ingress rule ${i} has a source that is not a namespace selected by labels`);
      }
      for (const port of rule.ports) {
        const n = f.resolve_port(port.port);
        if (n === undefined) { p.push(`ingress rule ${i} names port ${port.port}, which no container port is`); continue; }
        if (port.endPort) p.push(`ingress rule ${i} opens a port range`);
        const list = sources.get(n) || [];
        list.push(...rule.from.map((x) => JSON.stringify((x.namespaceSelector || {}).matchLabels)));
        sources.set(n, list);
      }
    }
    for (const n of sources.keys()) if (n !== f.api_port && n !== f.admin_port) p.push(`port ${n} is admitted but is neither the API nor the admin port`);
    const api = sources.get(f.api_port) || [];
    const admin = sources.get(f.admin_port) || [];
    if (!api.length) p.push(`the API port ${f.api_port} is not admitted from anywhere`);
    if (!admin.length) p.push(`the admin port ${f.admin_port} is not admitted from anywhere (Prometheus cannot scrape)`);
    if (!admin.some((s) => /monitoring/.test(s))) p.push('the admin port is not admitted from the monitoring namespace');
    if (admin.some((s) => api.includes(s))) p.push('the ingress namespace may reach the admin port');
    return p;
  });

  await check(`${prefix} the migration Job runs "neptun-api migrate" from the same image`, () => {
    const p = [];
    const argv = [...(f.jctr.command || []), ...(f.jctr.args || [])];
    if (argv.join(' ') !== 'migrate' && !/neptun-api migrate$/.test(argv.join(' '))) p.push(`the Job runs [${argv}], not migrate`);
    if (f.jctr.image !== f.ctr.image) p.push(`the Job image ${f.jctr.image} differs from the Deployment image ${f.ctr.image}`);
    if (!['Never', 'OnFailure'].includes(f.jpod.restartPolicy)) p.push(`restartPolicy ${f.jpod.restartPolicy}`);
    if (f.job.spec.backoffLimit === undefined) p.push('no backoffLimit');
    if (!/(^|\W)migrate(\W|$)/.test(help.text)) p.push('neptun-api --help does not mention the migrate command');
    return p;
  });
}

// ---------------------------------------------------------------------------------------
// The image

async function check_image(help) {
  let image;
  await check('image: deploy/Dockerfile builds with deploy/image/build.sh on Debian 12', () => {
    image = docker_image_facts(help);
    const p = [];
    const { stages, final } = image;
    if (stages.length < 2) p.push('not a multi-stage build');
    for (const s of stages) if (!/^debian:(12|bookworm)(-slim)?(@sha256:[0-9a-f]{64})?$/.test(s.image)) p.push(`stage ${s.name} is FROM ${s.image}, not Debian 12`);
    const build = stages.find((s) => s !== final && s.instructions.some((i) => /build\.sh build\b/.test(i.rest)));
    if (!build) return [...p, 'no stage runs deploy/image/build.sh build'];
    const runs = image.all(build, 'RUN').map((i) => i.rest);
    const step = (re, what) => { if (!runs.some((r) => re.test(r))) p.push(`the build stage does not run ${what}`); };
    step(/deploy\/image\/build\.sh deps\b/, 'deploy/image/build.sh deps');
    step(/deploy\/image\/build\.sh build\b/, 'deploy/image/build.sh build');
    step(/deploy\/image\/build\.sh check-runtime build\/release\/neptun-api\b/, 'deploy/image/build.sh check-runtime build/release/neptun-api');
    const fruns = image.all(final, 'RUN').map((i) => i.rest).join('\n');
    if (!/apt-get install[^\n]*\$\([^)]*build\.sh runtime-deps\)/.test(fruns)) p.push('the runtime stage does not apt-get install $(build.sh runtime-deps)');
    if (/-dev\b/.test(fruns)) p.push('the runtime stage installs -dev packages');
    const copy = image.all(final, 'COPY').find((i) => /--from=\S+/.test(i.rest) && /build\/release\/neptun-api\b/.test(i.rest));
    if (!copy) p.push('the runtime stage does not COPY build/release/neptun-api from the build stage');
    const ep = image.entrypoint;
    if (!Array.isArray(ep) || !/\/neptun-api$/.test(ep[0])) p.push(`ENTRYPOINT ${JSON.stringify(ep)} is not the exec form of neptun-api`);
    else if (copy && !copy.rest.trim().endsWith(` ${ep[0]}`)) p.push(`ENTRYPOINT ${ep[0]} is not where the binary is copied (${copy.rest})`);
    if (image.cmd !== undefined && !(Array.isArray(image.cmd) && ['serve', 'migrate'].includes(image.cmd[0]))) p.push(`CMD ${JSON.stringify(image.cmd)} is not a neptun-api command`);
    if (!(Number.isInteger(image.uid) && image.uid > 0)) p.push(`USER is ${image.uid === undefined ? 'not set' : image.uid}: the image must run as a numeric non-root uid (Kubernetes checks runAsNonRoot only for numbers)`);
    const api = port_of(help.defaults.get('NEPTUN_LISTEN'));
    const admin = port_of(help.defaults.get('NEPTUN_ADMIN_LISTEN'));
    for (const [n, port] of [['NEPTUN_LISTEN', api], ['NEPTUN_ADMIN_LISTEN', admin]]) {
      if (!image.exposed.includes(port)) p.push(`the ${n} default port ${port} is not EXPOSEd (${image.exposed})`);
    }
    return { problems: p, note: `uid ${image.uid}, ports ${image.exposed.join(' ')}` };
  });

  await check('image: the build stage copies everything the CMake build reads', () => {
    if (!image) return ['the Dockerfile could not be read'];
    const build = image.stages.find((s) => s !== image.final);
    const copied = new Set();
    for (const i of image.all(build, 'COPY')) {
      if (/--from=/.test(i.rest)) continue;
      const parts = i.rest.replace(/--\S+/g, '').trim().split(/\s+/);
      for (const src of parts.slice(0, -1)) copied.add(src.replace(/\/$/, '').split('/')[0]);
    }
    if (copied.has('.')) return { problems: [], note: 'copies the whole context' };
    const needed = new Set(['CMakeLists.txt', 'CMakePresets.json']);
    const cmake = read('CMakeLists.txt').replace(/#[^\n]*/g, '');
    for (const tok of cmake.split(/[\s()"]+/)) {
      if (!tok || /^[$-]/.test(tok) || tok.includes('::')) continue;
      const first = tok.split('/')[0];
      if (!first || first === 'build' || first === '.') continue;
      if (fs.existsSync(path.join(root, first)) && (tok.includes('/') || fs.statSync(path.join(root, first)).isDirectory())) needed.add(first);
    }
    const missing = [...needed].filter((n) => !copied.has(n));
    return {
      problems: missing.map((m) => `${m} is read by the CMake build but not COPYed into the build stage`),
      note: [...needed].sort().join(' '),
    };
  });

  await check('image: deploy/image/build.sh lists the runtime packages', () => {
    const script = path.join(root, 'deploy/image/build.sh');
    try { fs.accessSync(script, fs.constants.X_OK); } catch { return ['deploy/image/build.sh is not executable (the Dockerfile runs it directly)']; }
    const r = cp.spawnSync(script, ['runtime-deps'], { encoding: 'utf8' });
    if (r.status !== 0) return [`build.sh runtime-deps exited ${r.status}: ${r.stderr}`];
    const pkgs = r.stdout.split('\n').filter(Boolean);
    const bad = pkgs.filter((x) => !/^[a-z0-9][a-z0-9+.-]+$/.test(x));
    if (!pkgs.length) return ['no packages'];
    if (bad.length) return [`not Debian package names: ${bad}`];
    return { problems: [], note: pkgs.join(' ') };
  });

  await check('image: every shared library of the binary is in the runtime image', () => {
    if (!opts.binary) return { skip: 'no binary given' };
    // The image ships the release build; a sanitizer build (asan, tsan presets) needs its
    // compiler's runtime libraries and is never shipped.
    const ldd = cp.spawnSync('ldd', [opts.binary], { encoding: 'utf8' });
    if (/\blib(asan|tsan|ubsan|lsan)\.so/.test(ldd.stdout || '')) return { skip: 'a sanitizer build, not the image\'s binary' };
    const r = cp.spawnSync(path.join(root, 'deploy/image/build.sh'), ['check-runtime', opts.binary], { encoding: 'utf8' });
    if (r.error) return [`deploy/image/build.sh: ${r.error.message}`];
    if (r.status !== 0) return [`build.sh check-runtime ${opts.binary} exited ${r.status}`, ...(r.stdout + r.stderr).trim().split('\n').filter((l) => !/^ok /.test(l))];
    return { problems: [], note: r.stdout.trim().split('\n').pop() };
  });
  return image;
}

// ---------------------------------------------------------------------------------------
// compose.yaml

async function check_compose(help, image) {
  const file = 'deploy/compose.yaml';
  if (!fs.existsSync(path.join(root, file))) return check(`compose: ${file}`, () => ({ skip: 'absent' }));
  let doc;
  await check('compose: deploy/compose.yaml parses', () => {
    const d = YAML.parseDocument(read(file), { merge: true });
    if (d.errors.length) return d.errors.map((e) => e.message);
    doc = d.toJS();
    return [];
  });
  if (!doc) return;
  await check('compose: redis, postgres, a migrate one-off and neptun-api fit together', () => {
    const p = [];
    const s = doc.services || {};
    for (const n of ['redis', 'postgres', 'migrate', 'neptun-api']) if (!s[n]) p.push(`no service ${n}`);
    if (p.length) return p;
    const api = s['neptun-api'];
    const mig = s.migrate;
    const env_of = (svc) => (Array.isArray(svc.environment)
      ? Object.fromEntries(svc.environment.map((e) => [e.split('=')[0], e.split('=').slice(1).join('=')]))
      : svc.environment || {});
    for (const [n, svc] of [['neptun-api', api], ['migrate', mig]]) {
      const env = env_of(svc);
      for (const k of Object.keys(env)) if (/^NEPTUN_/.test(k) && !help.names.has(k)) p.push(`${n}: ${k} is not a setting of the server`);
      const b = svc.build;
      const dockerfile = b && path.normalize(path.join('deploy', b.context || '.', b.dockerfile || 'Dockerfile'));
      if (b && dockerfile !== 'deploy/Dockerfile') p.push(`${n} builds ${dockerfile}, not deploy/Dockerfile`);
      if (!b && svc.image !== api.image) p.push(`${n} neither builds deploy/Dockerfile nor uses the neptun-api image`);
      if (svc.read_only !== true) p.push(`${n}: read_only is not true`);
      if (Number(String(svc.user || '').split(':')[0]) !== image.uid) p.push(`${n}: user ${svc.user} is not the image's uid ${image.uid}`);
      if (!(svc.cap_drop || []).includes('ALL')) p.push(`${n}: cap_drop lacks ALL`);
      if (!(svc.security_opt || []).some((o) => /^no-new-privileges(:true)?$/.test(o))) p.push(`${n}: no security_opt no-new-privileges`);
      for (const [k, want] of [['NEPTUN_REDIS_URL', 'redis'], ['NEPTUN_DATABASE_URL', 'postgres']]) {
        if (env[k] === undefined) continue;
        const host = (/^[a-z]+:\/\/(?:[^@/]*@)?([^:/?]+)/.exec(env[k]) || [])[1];
        if (host !== want) p.push(`${n}: ${k} points at ${host}, not the ${want} service`);
      }
    }
    const argv = [].concat(mig.command || []);
    if (argv.join(' ') !== 'migrate') p.push(`migrate runs [${argv}], not migrate`);
    if (!env_of(mig).NEPTUN_DATABASE_URL) p.push('migrate has no NEPTUN_DATABASE_URL');
    for (const k of ['NEPTUN_REDIS_URL', 'NEPTUN_DATABASE_URL']) if (!env_of(api)[k]) p.push(`neptun-api has no ${k}`);
    const dep = api.depends_on || {};
    const cond = (n) => (Array.isArray(dep) ? (dep.includes(n) ? 'service_started' : undefined) : (dep[n] || {}).condition);
    if (cond('migrate') !== 'service_completed_successfully') p.push('neptun-api does not wait for migrate to complete');
    for (const n of ['redis', 'postgres']) if (cond(n) !== 'service_healthy') p.push(`neptun-api does not wait for ${n} to be healthy`);
    if (((mig.depends_on || {}).postgres || {}).condition !== 'service_healthy') p.push('migrate does not wait for postgres to be healthy');
    const env = env_of(api);
    const setting = (k) => (env[k] !== undefined ? env[k] : help.defaults.get(k));
    const api_port = port_of(setting('NEPTUN_LISTEN'));
    const admin_port = port_of(setting('NEPTUN_ADMIN_LISTEN'));
    const published = (api.ports || []).map((x) => String(typeof x === 'object' ? `${x.host_ip ? x.host_ip + ':' : ''}${x.published}:${x.target}` : x));
    const target = (x) => Number(x.split(':').pop().split('/')[0]);
    if (!published.some((x) => target(x) === api_port)) p.push(`the API port ${api_port} is not published`);
    for (const x of published.filter((y) => target(y) === admin_port)) {
      if (!/^127\.0\.0\.1:/.test(x)) p.push(`the admin port is published beyond loopback (${x})`);
    }
    const secs = (v) => { const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(v ?? '10s')); return m ? Number(m[1]) * { ms: 0.001, s: 1, m: 60, undefined: 1 }[m[2]] : NaN; };
    const grace = secs(api.stop_grace_period) * 1000;
    const need = Number(setting('NEPTUN_SHUTDOWN_DELAY_MS')) + Number(setting('NEPTUN_SHUTDOWN_TIMEOUT_MS')) + grace_margin_ms;
    if (!(need <= grace)) p.push(`stop_grace_period ${api.stop_grace_period ?? '10s (default)'} < drain ${need} ms (delay + timeout + margin)`);
    return p;
  });
}

// ---------------------------------------------------------------------------------------
// docs/operations.md

// Metric-like words of a text. Not metrics: neptun_user and neptun_user_project (the schema's
// tables) and neptun_api (the database role the docs suggest).
function metric_names_in(text) {
  return new Set((text.match(/\b(?:neptun|process)_[a-z0-9_]+\b/g) || []).filter((n) => !/^neptun_(user|api$)/.test(n)));
}

async function check_docs(help, live_metrics) {
  const file = 'docs/operations.md';
  if (!fs.existsSync(path.join(root, file))) return check(`docs: ${file} exists`, () => [`${file} is missing`]);
  const text = read(file);
  await check('docs: settings named in docs/operations.md exist, and every setting is documented', () => {
    const p = [];
    // NEPTUN_API_* are the Service-link variables the docs warn about, not settings.
    const named = new Set((text.match(/\bNEPTUN_[A-Z0-9_]+\b/g) || []).filter((n) => !/^NEPTUN_API_/.test(n)));
    for (const n of named) if (!help.names.has(n)) p.push(`${n} is named in ${file} but is not a setting of the server`);
    for (const n of help.names) if (!named.has(n)) p.push(`${n} is a setting of the server but ${file} does not mention it`);
    return p;
  });
  await check('docs: metrics named in docs/operations.md exist', () => {
    const known = live_metrics || new Set(promised_metrics);
    const p = [];
    const exported = (n) => known.has(n) || (/_(bucket|sum|count)$/.test(n) && known.has(n.replace(/_(bucket|sum|count)$/, '')));
    for (const n of metric_names_in(text)) if (!exported(n)) p.push(`${n} is named in ${file} but the server ${live_metrics ? 'does not export it' : 'does not promise it'}`);
    return { problems: p, note: live_metrics ? 'against the live /metrics' : 'against the promised list' };
  });
}

// ---------------------------------------------------------------------------------------
// The live server: start it with an overlay's settings, probe it, SIGTERM it.

function free_port() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function get(port, urlpath, timeout_ms = 2000) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlpath, method: 'GET', agent: false,
      headers: { Connection: 'close' }, timeout: timeout_ms }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET :${port}${urlpath} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// With live stores: the Job's command, with the Job's settings, twice (it must be idempotent).
async function check_migrate(name, objs, help) {
  const title = `server ${name}: the migration Job's command succeeds twice`;
  if (!opts.binary) return check(title, () => ({ skip: 'no binary given' }));
  const url = process.env.NEPTUN_DEPLOY_CHECK_DATABASE_URL;
  if (!url) return check(title, () => ({ skip: 'NEPTUN_DEPLOY_CHECK_DATABASE_URL not set' }));
  return check(title, () => {
    const f = overlay_facts(objs, help);
    const argv = [...(f.jctr.command || []).slice(1), ...(f.jctr.args || [])];
    const literal = Object.fromEntries((f.jctr.env || []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
    const env = { PATH: process.env.PATH || '/usr/bin:/bin', ...f.cm_of(f.jctr).data, ...literal, NEPTUN_DATABASE_URL: url };
    for (const run of [1, 2]) {
      const r = cp.spawnSync(opts.binary, argv, { env, encoding: 'utf8', timeout: 60000 });
      if (r.status !== 0) return [`run ${run} of neptun-api ${argv.join(' ')} exited ${r.status ?? r.signal}`, ...(r.stdout + r.stderr).trim().split('\n').slice(-8).map((l) => `  | ${l}`)];
    }
    return { problems: [], note: `neptun-api ${argv.join(' ')}` };
  });
}

async function check_live(name, objs, help) {
  const prefix = `server ${name}:`;
  if (!opts.binary) {
    for (const what of ['starts with the overlay\'s settings', 'serves /livez, /readyz and /metrics on the admin port only', 'drains on SIGTERM']) {
      await check(`${prefix} ${what}`, () => ({ skip: 'no binary given' }));
    }
    return undefined;
  }
  const f = overlay_facts(objs, help);
  const [api, admin, closed_redis, closed_pg] = await Promise.all([free_port(), free_port(), free_port(), free_port()]);
  const with_stores = process.env.NEPTUN_DEPLOY_CHECK_REDIS_URL && process.env.NEPTUN_DEPLOY_CHECK_DATABASE_URL;
  const env = {
    PATH: process.env.PATH || '/usr/bin:/bin',
    ...f.cm.data,
    ...f.env_literal,
    NEPTUN_LISTEN: `127.0.0.1:${api}`,
    NEPTUN_ADMIN_LISTEN: `127.0.0.1:${admin}`,
    NEPTUN_THREADS: String(Math.ceil(quantity(((f.ctr.resources || {}).limits || {}).cpu || 1))),
    NEPTUN_REDIS_URL: with_stores ? process.env.NEPTUN_DEPLOY_CHECK_REDIS_URL : `redis://127.0.0.1:${closed_redis}/0`,
    NEPTUN_DATABASE_URL: with_stores ? process.env.NEPTUN_DEPLOY_CHECK_DATABASE_URL : `postgresql://neptun@127.0.0.1:${closed_pg}/neptun?connect_timeout=1`,
    NEPTUN_SHUTDOWN_DELAY_MS: String(live_shutdown_delay_ms),
  };
  const timeout_ms = Number(f.setting('NEPTUN_SHUTDOWN_TIMEOUT_MS'));
  // The Deployment's own arguments (`serve`); the image's ENTRYPOINT is the binary.
  const argv = [...(f.ctr.command || []).slice(1), ...(f.ctr.args || [])];
  const child = cp.spawn(opts.binary, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  let exited = null;
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => { exited = { code, signal, at: Date.now() }; resolve(exited); }));
  const tail = () => (output.trim() ? output.trim().split('\n').slice(-8).map((l) => `  | ${l}`) : ['(no output)']);
  let metrics;
  let worst_case_note = '';

  try {
    let up = false;
    await check(`${prefix} starts with the overlay's settings`, async () => {
      const deadline = Date.now() + 15000;
      while (Date.now() < deadline && !exited) {
        try { if ((await get(admin, '/livez', 500)).status === 200) { up = true; break; } } catch { /* not yet */ }
        await sleep(100);
      }
      if (exited) return [`exited ${exited.code ?? exited.signal} before answering /livez (a setting of the ConfigMap rejected?)`, ...tail()];
      if (!up) return ['/livez on the admin port did not answer 200 within 15 s', ...tail()];
      return { problems: [], note: with_stores ? 'with the stores given' : 'stores unreachable on purpose' };
    });
    if (!up) return undefined;

    await check(`${prefix} serves /livez, /readyz and /metrics on the admin port only`, async () => {
      const p = [];
      // The stores' first connection attempts may still be under way: give them a moment.
      const want = with_stores ? 200 : 503;
      let ready = await get(admin, '/readyz');
      const deadline = Date.now() + (with_stores ? 10000 : 3000);
      while (ready.status !== want && Date.now() < deadline) { await sleep(200); ready = await get(admin, '/readyz'); }
      if (ready.status !== want) p.push(`/readyz is ${ready.status} with the stores ${with_stores ? 'up' : 'unreachable'}, expected ${want}: ${ready.body.slice(0, 200)}`);
      const m = await get(admin, '/metrics');
      if (m.status !== 200) p.push(`/metrics answered ${m.status}`);
      if (!/^text\/plain/.test(m.headers['content-type'] || '')) p.push(`/metrics Content-Type is ${m.headers['content-type']}`);
      metrics = new Set([...m.body.matchAll(/^# TYPE (\S+) \S+/gm)].map((x) => x[1]));
      // The server's own worst case per connection with these settings (the bound that
      // tests/e2e/memory_test.cpp measures) times the connection cap must fit the limit.
      const bound = m.body.match(/^neptun_connection_memory_bound_bytes\{state="active"\} (\d+)$/m);
      const conns = Number(f.setting('NEPTUN_MAX_CONNECTIONS'));
      const limit = quantity(((f.ctr.resources || {}).limits || {}).memory);
      const mib = (x) => `${Math.round(x / 2 ** 20)} MiB`;
      if (!bound) p.push('/metrics has no neptun_connection_memory_bound_bytes{state="active"}');
      else if (!(conns * Number(bound[1]) <= buffer_memory_share * limit))
        p.push(`${conns} connections x ${bound[1]} bytes = ${mib(conns * Number(bound[1]))} > ${buffer_memory_share * 100}% of the memory limit ${mib(limit)}: lower NEPTUN_MAX_CONNECTIONS or raise the limit`);
      else worst_case_note = `, worst case ${mib(conns * Number(bound[1]))} of ${mib(limit)}`;
      for (const n of promised_metrics) if (!metrics.has(n)) p.push(`/metrics has no "# TYPE ${n}" family`);
      for (const pth of ['/livez', '/readyz', '/metrics']) {
        const r = await get(api, pth);
        if (r.status !== 404) p.push(`the API port answers ${pth} with ${r.status}: admin endpoints must stay off the public port`);
      }
      const a = await get(api, '/api/users/1/projects/1');
      if (a.status !== 401) p.push(`GET /api/users/1/projects/1 without a cookie on the API port answered ${a.status}, expected 401`);
      return { problems: p, note: `${metrics.size} metric families${worst_case_note}` };
    });

    await check(`${prefix} drains on SIGTERM`, async () => {
      const p = [];
      const before = (await get(api, '/api/users/1/projects/1')).status;
      const sent = Date.now();
      child.kill('SIGTERM');
      await sleep(200);
      const ready = await get(admin, '/readyz').catch((e) => ({ status: e.message }));
      const during = await get(api, '/api/users/1/projects/1').catch((e) => ({ status: e.message }));
      if (Date.now() - sent < live_shutdown_delay_ms) {
        if (ready.status !== 503) p.push(`/readyz answered ${ready.status} during the drain delay, expected 503`);
        if (during.status !== before) p.push(`the API answered ${during.status} during the drain delay (before SIGTERM: ${before}); it must keep serving while endpoints update`);
      }
      const limit = live_shutdown_delay_ms + timeout_ms + 3000;
      let timer;
      const done = await Promise.race([exit, new Promise((r) => { timer = setTimeout(() => r(null), limit); })]);
      clearTimeout(timer);
      if (!done) {
        p.push(`still running ${limit} ms after SIGTERM (delay ${live_shutdown_delay_ms} + NEPTUN_SHUTDOWN_TIMEOUT_MS ${timeout_ms} + 3000)`);
        child.kill('SIGKILL');
        return p;
      }
      const took = done.at - sent;
      if (done.code !== 0) p.push(`exited ${done.code ?? done.signal} after a drain, expected 0`, ...tail());
      if (took < live_shutdown_delay_ms * 0.9) p.push(`exited ${took} ms after SIGTERM, before NEPTUN_SHUTDOWN_DELAY_MS ${live_shutdown_delay_ms}`);
      return { problems: p, note: `exit ${done.code} after ${took} ms with NEPTUN_SHUTDOWN_DELAY_MS=${live_shutdown_delay_ms}` };
    });
  } finally {
    if (!exited) { child.kill('SIGKILL'); await exit; }
  }
  return metrics;
}

// ---------------------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  let help;
  await check('server: --help lists the settings', () => {
    help = load_help();
    const p = [];
    if (help.names.size < 10) p.push(`only ${help.names.size} NEPTUN_ names in --help`);
    for (const n of ['NEPTUN_LISTEN', 'NEPTUN_ADMIN_LISTEN', 'NEPTUN_SHUTDOWN_DELAY_MS', 'NEPTUN_SHUTDOWN_TIMEOUT_MS']) {
      if (!help.defaults.has(n)) p.push(`--help shows no "(default ...)" for ${n}`);
    }
    return { problems: p, note: `${help.names.size} settings${opts.binary ? '' : ', from --help-file'}` };
  });
  if (!help) return finish(started);

  const image = await check_image(help);
  const overlays_dir = path.join(root, 'deploy/k8s/overlays');
  const overlays = fs.readdirSync(overlays_dir).filter((d) => fs.existsSync(path.join(overlays_dir, d, 'kustomization.yaml'))).sort();
  if (!overlays.includes('production')) await check('k8s: a production overlay exists', () => ['deploy/k8s/overlays/production is missing']);
  let live_metrics;
  for (const o of overlays) {
    await check_overlay(o, path.join(overlays_dir, o), help, image || { exposed: [] });
    const file = path.join(opts.cache, 'rendered', `${o}.yaml`);
    if (results.some((r) => r.name === `k8s ${o}: kustomize renders` && !r.problems.length)) {
      const objs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8')).map((d) => d.toJS()).filter(Boolean);
      if (objs.some((x) => x.kind === 'Deployment') && objs.some((x) => x.kind === 'Job')) {
        await check_migrate(o, objs, help);
        const m = await check_live(o, objs, help);
        live_metrics = live_metrics || m;
      }
    }
  }
  await check_compose(help, image || {});
  await check_docs(help, live_metrics);
  finish(started);
}

function finish(started) {
  const failed = results.filter((r) => !r.skip && r.problems.length);
  const passed = results.filter((r) => !r.skip && !r.problems.length);
  const skipped = results.filter((r) => r.skip);
  console.log(`deploy checks took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (failed.length) console.log(`failed: ${failed.map((r) => r.name).join('; ')}`);
  console.log(`${passed.length} passed, ${failed.length} failed${skipped.length ? `, ${skipped.length} skipped` : ''}`);
  process.exitCode = failed.length ? 1 : 0;
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exitCode = 1;
});
