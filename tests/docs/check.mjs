// tests/docs/check.mjs -- checks docs/openapi.yaml: that it is a valid OpenAPI 3.1 document,
// that every example in it fits its schema, and, with live stores, that the real server
// answers every status the document declares for each operation with the headers and body
// the document declares, and answers nothing it does not declare. Run by tests/docs/check.sh,
// which installs the npm packages this needs; see that file for usage.
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import cp from 'node:child_process';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const opts = parse_args(process.argv.slice(2));
const from_cache = createRequire(path.join(opts.cache, 'package.json'));
const YAML = from_cache('yaml');
const Ajv2020 = from_cache('ajv/dist/2020').default;
const add_formats = from_cache('ajv-formats').default;
const { Validator } = await import(
  pathToFileURL(path.join(opts.cache, 'node_modules/@seriousme/openapi-schema-validator/index.js')).href);

const doc_file = path.join(opts.root, 'docs/openapi.yaml');
const api_path = '/api/users/{user_id}/projects/{project_id}';
const methods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
// Statuses the live run does not try to provoke: a 500 needs a bug.
const not_provoked = new Set(['500']);
const limits = { header: 8192, body: 65536 };  // the server's defaults, which the live run keeps

// ---------------------------------------------------------------------------------------
// Results

const results = [];

function record(name, outcome) {
  results.push({ name, ...outcome });
  const tag = outcome.skip ? 'skip' : outcome.problems.length ? 'FAIL' : 'ok  ';
  let line = `${tag} ${name}`;
  if (outcome.skip) line += ` (${outcome.skip})`;
  else if (!outcome.problems.length && outcome.note) line += ` (${outcome.note})`;
  console.log(line);
  for (const p of outcome.problems || []) console.log(`       - ${p}`);
}

// check(name, fn): fn returns a list of problems (empty: passed), or {skip}, or
// {problems, note}; it may be async. A throw is a failure too.
async function check(name, fn) {
  try {
    const r = await fn();
    if (r && r.skip) return record(name, { skip: r.skip, problems: [] });
    if (Array.isArray(r)) return record(name, { problems: r });
    return record(name, { problems: (r && r.problems) || [], note: r && r.note });
  } catch (e) {
    return record(name, { problems: [`threw: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`] });
  }
}

// ---------------------------------------------------------------------------------------
// The document and its schemas

let doc;
try {
  doc = YAML.parse(fs.readFileSync(doc_file, 'utf8'), { uniqueKeys: true });
  if (!doc || typeof doc !== 'object' || !doc.paths || !doc.paths[api_path]) throw new Error(`no paths['${api_path}']`);
} catch (e) {
  record(`${path.relative(opts.root, doc_file)} is readable YAML with the endpoint's path`, { problems: [e.message.split('\n')[0]] });
  console.log('0 passed, 1 failed');
  process.exit(1);
}

// Follows a local $ref of the document (responses, examples, parameters, headers).
function deref(obj) {
  let seen = 0;
  while (obj && typeof obj === 'object' && typeof obj.$ref === 'string') {
    if (!obj.$ref.startsWith('#/') || ++seen > 16) throw new Error(`cannot follow $ref ${obj.$ref}`);
    obj = obj.$ref.slice(2).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce((o, k) => (o == null ? undefined : o[k]), doc);
    if (obj === undefined) throw new Error('dangling $ref');
  }
  return obj;
}

// JSON Schema: the document's component schemas become the $defs of one schema resource,
// and every '#/components/schemas/X' reference points there, so that any schema of the
// document (inline ones too) compiles on its own.
const schema_base = 'urn:neptun:docs:openapi';
function rewrite_refs(value) {
  if (Array.isArray(value)) return value.map(rewrite_refs);
  if (!value || typeof value !== 'object') return value;
  const out = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/'))
      out[k] = `${schema_base}#/$defs/${v.slice('#/components/schemas/'.length)}`;
    else out[k] = rewrite_refs(v);
  }
  return out;
}

const ajv = new Ajv2020({ strict: true, strictTypes: false, allErrors: true, allowUnionTypes: true });
add_formats(ajv);
ajv.addVocabulary(['discriminator', 'xml', 'externalDocs', 'example']);  // OpenAPI's dialect
let root_schema_error = null;
try {
  ajv.addSchema({ $id: schema_base, $defs: rewrite_refs((doc.components || {}).schemas || {}) });
} catch (e) {
  root_schema_error = e.message;
}

const compiled = new Map();
function validator_for(schema) {
  const key = JSON.stringify(schema);
  if (!compiled.has(key)) compiled.set(key, ajv.compile(rewrite_refs(schema)));
  return compiled.get(key);
}

function schema_problems(schema, value, what) {
  const validate = validator_for(schema);
  if (validate(value)) return [];
  return [`${what}: ${ajv.errorsText(validate.errors, { dataVar: 'value' }).slice(0, 600)}`];
}

// ---------------------------------------------------------------------------------------
// (a) the document itself

await check('docs/openapi.yaml is a valid OpenAPI 3.1 document', async () => {
  const p = [];
  if (!/^3\.1\.\d+$/.test(String(doc.openapi))) p.push(`openapi is ${doc.openapi}, expected 3.1.x`);
  const validator = new Validator();
  const res = await validator.validate(structuredClone(doc));
  if (!res.valid) for (const e of [].concat(res.errors || [])) p.push(JSON.stringify(e).slice(0, 400));
  else if (validator.version !== '3.1') p.push(`validated as OpenAPI ${validator.version}, expected 3.1`);
  return p;
});

await check('every schema of the document compiles (JSON Schema 2020-12, strict)', () => {
  if (root_schema_error) return [root_schema_error];
  const p = [];
  let n = 0;
  for_each_schema((schema, where) => {
    n++;
    try { validator_for(schema); } catch (e) { p.push(`${where}: ${e.message}`); }
  });
  return { problems: p, note: `${n} schemas` };
});

await check('the document declares the endpoint, its parameters and its security as the contract says', () => {
  const p = [];
  const item = doc.paths && doc.paths[api_path];
  if (!item) return [`no path ${api_path}`];
  const paths = Object.keys(doc.paths);
  if (paths.length !== 1) p.push(`paths other than ${api_path}: ${paths.filter((x) => x !== api_path).join(', ')}`);
  for (const name of ['user_id', 'project_id']) {
    const param = (item.parameters || []).map(deref).find((x) => x.name === name && x.in === 'path');
    if (!param) { p.push(`no path parameter ${name}`); continue; }
    if (!param.required) p.push(`${name} is not required`);
    if (!param.schema || param.schema.pattern !== '^[1-9][0-9]{0,9}$')
      p.push(`${name} pattern is ${param.schema && param.schema.pattern}, expected ^[1-9][0-9]{0,9}$`);
  }
  const scheme = doc.components && doc.components.securitySchemes && doc.components.securitySchemes.session;
  if (!scheme || scheme.type !== 'apiKey' || scheme.in !== 'cookie' || scheme.name !== 'neptun-session')
    p.push('components.securitySchemes.session is not an apiKey in the cookie neptun-session');
  for (const m of ['get', 'patch']) {
    const op = item[m];
    if (!op) { p.push(`no ${m.toUpperCase()} operation`); continue; }
    const sec = op.security || doc.security;
    if (!sec || !sec.some((s) => s && Object.keys(s).includes('session'))) p.push(`${m.toUpperCase()} is not secured by the session cookie`);
  }
  const body = item.patch && item.patch.requestBody && deref(item.patch.requestBody);
  const body_schema = body && body.content && body.content['application/json'] &&
    deref(body.content['application/json'].schema);
  if (!body || !body.required || !body_schema) p.push('PATCH has no required application/json body');
  else {
    if (body_schema.additionalProperties !== false) p.push('the PATCH body schema allows other properties');
    if (body_schema.minProperties !== 1) p.push('the PATCH body schema has no minProperties: 1');
    const props = body_schema.properties || {};
    for (const f of ['name', 'description', 'project_type', 'programming_language'])
      if (!props[f]) p.push(`the PATCH body schema has no ${f}`);
    if (props.name && props.name.maxLength !== 255) p.push('name has no maxLength 255');
    if (props.description && props.description.maxLength !== 10000) p.push('description has no maxLength 10000');
  }
  for (const m of methods) {
    const op = item[m];
    if (!op) { p.push(`${m.toUpperCase()} is not declared (it answers 405)`); continue; }
    for (const [status, r] of Object.entries(op.responses || {})) {
      const res = deref(r);
      if (status === '405' && !(res.headers && res.headers.Allow)) p.push(`${m.toUpperCase()} 405 declares no Allow header`);
      if (status === '503' && !(res.headers && res.headers['Retry-After'])) p.push(`${m.toUpperCase()} 503 declares no Retry-After header`);
      if (['200', '304', '412'].includes(status) && !(res.headers && res.headers.ETag))
        p.push(`${m.toUpperCase()} ${status} declares no ETag header (CONTRACT.md §1.2)`);
      if (m === 'head' || status === '304') {
        if (res.content) p.push(`${m.toUpperCase()} ${status} declares content: it has none`);
        continue;
      }
      const media = Object.keys(res.content || {});
      if (media.length !== 1 || media[0] !== 'application/json') p.push(`${m.toUpperCase()} ${status} content is [${media}], expected application/json only`);
      else {
        const mt = res.content['application/json'];
        if (!mt.schema) p.push(`${m.toUpperCase()} ${status} has no schema`);
        if (!mt.example && !Object.keys(mt.examples || {}).length) p.push(`${m.toUpperCase()} ${status} has no example`);
      }
    }
  }
  return p;
});

// ---------------------------------------------------------------------------------------
// (b) every example against its schema

function* media_types() {
  const item = doc.paths[api_path] || {};
  for (const m of methods) {
    const op = item[m];
    if (!op) continue;
    // Referenced ones are checked once, under components, below.
    if (op.requestBody && !op.requestBody.$ref)
      for (const [type, mt] of Object.entries(op.requestBody.content || {})) yield [`${m.toUpperCase()} request body ${type}`, mt];
    for (const [status, res] of Object.entries(op.responses || {})) {
      if (res.$ref) continue;
      for (const [type, mt] of Object.entries(res.content || {})) yield [`${m.toUpperCase()} ${status} ${type}`, mt];
    }
  }
  const comp = doc.components || {};
  for (const [name, r] of Object.entries(comp.responses || {}))
    for (const [type, mt] of Object.entries(r.content || {})) yield [`components.responses.${name} ${type}`, mt];
  for (const [name, r] of Object.entries(comp.requestBodies || {}))
    for (const [type, mt] of Object.entries(r.content || {})) yield [`components.requestBodies.${name} ${type}`, mt];
}

// Parameters and headers: they have a schema and examples too.
function* schema_holders() {
  yield* media_types();
  const item = doc.paths[api_path] || {};
  const comp = doc.components || {};
  const params = [...(item.parameters || []).filter((x) => !x.$ref), ...Object.values(comp.parameters || {})];
  for (const p of params) yield [`parameter ${p.name}`, p];
  for (const [name, h] of Object.entries(comp.headers || {})) yield [`components.headers.${name}`, h];
}

// Calls f(schema, where) for every schema in the document: component schemas and their
// subschemas with examples, and the schemas of media types, parameters and headers.
function for_each_schema(f) {
  for (const [name, s] of Object.entries((doc.components || {}).schemas || {})) f(s, `components.schemas.${name}`);
  for (const [where, holder] of schema_holders()) if (holder.schema) f(holder.schema, where);
}

function* schema_examples() {
  // JSON Schema `examples` anywhere inside the component schemas.
  function* walk(schema, where) {
    if (!schema || typeof schema !== 'object') return;
    if (Array.isArray(schema)) {
      for (const [i, s] of schema.entries()) yield* walk(s, `${where}[${i}]`);
      return;
    }
    if (Array.isArray(schema.examples))
      for (const [i, e] of schema.examples.entries()) yield [`${where}.examples[${i}]`, schema, e];
    for (const [k, v] of Object.entries(schema)) {
      if (k === 'examples' || k === 'enum' || k === 'const') continue;
      if (v && typeof v === 'object') yield* walk(v, `${where}.${k}`);
    }
  }
  for (const [name, s] of Object.entries((doc.components || {}).schemas || {}))
    yield* walk(s, `components.schemas.${name}`);
}

{
  let count = 0;
  const seen_example_refs = new Set();
  for (const [where, holder] of schema_holders()) {
    const entries = [];
    if ('example' in holder) entries.push(['example', holder.example]);
    for (const [name, e] of Object.entries(holder.examples || {})) {
      if (e && e.$ref) seen_example_refs.add(e.$ref);
      entries.push([name, deref(e)]);
    }
    for (const [name, e] of entries) {
      count++;
      const value = name === 'example' ? e : e.value;
      await check(`example ${where} "${name}" fits its schema`, () => {
        if (!holder.schema) return ['no schema to check it against'];
        if (name !== 'example' && !('value' in e)) return ['no value (externalValue is not checked)'];
        return schema_problems(holder.schema, value, 'example');
      });
    }
  }
  for (const [where, schema, e] of schema_examples()) {
    count++;
    await check(`example ${where} fits its schema`, () => schema_problems(schema, e, 'example'));
  }
  await check('every example of components.examples is used', () => {
    const unused = Object.keys((doc.components || {}).examples || {})
      .filter((n) => !seen_example_refs.has(`#/components/examples/${n}`));
    return unused.map((n) => `components.examples.${n} is referenced nowhere, so nothing checks it`);
  });
  if (count === 0) await check('the document has examples', () => ['none found']);
}

// ---------------------------------------------------------------------------------------
// (c) the live server

const redis_url = process.env.NEPTUN_DEPLOY_CHECK_REDIS_URL || '';
const database_url = process.env.NEPTUN_DEPLOY_CHECK_DATABASE_URL || '';
const children = [];
process.on('exit', () => { for (const c of children) if (c.exitCode === null) try { c.kill('SIGKILL'); } catch { /* gone */ } });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(1));  // 'exit' stops the servers

if (!opts.binary) {
  await check('live: the server answers as the document says', () => ({ skip: 'no binary given' }));
} else if (!redis_url || !database_url) {
  await check('live: the server answers as the document says', () => ({
    skip: 'NEPTUN_DEPLOY_CHECK_REDIS_URL and NEPTUN_DEPLOY_CHECK_DATABASE_URL are not set; tests/run.sh sets them',
  }));
} else {
  await live();
}

const failed = results.filter((r) => !r.skip && r.problems.length).length;
const passed = results.filter((r) => !r.skip && !r.problems.length).length;
const skipped = results.filter((r) => r.skip).length;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed ? 1 : 0);

// ---------------------------------------------------------------------------------------

async function live() {
  const observed = new Map(methods.map((m) => [m, new Set()]));
  const token = crypto.randomBytes(24).toString('base64url');
  const prefix = 'neptun:session:';
  const tag = crypto.randomBytes(6).toString('hex');
  let seeded = null;
  let main = null, outage = null;

  try {
    await check('live: the server starts and turns ready', async () => {
      main = await start_server({ NEPTUN_REDIS_URL: redis_url, NEPTUN_DATABASE_URL: database_url });
      const deadline = Date.now() + 15000;
      let last = null;
      while (Date.now() < deadline) {
        last = await exchange(main.admin_port, request('GET', '/readyz')).catch((e) => ({ error: e.message }));
        if (last.responses && last.responses[0] && last.responses[0].status === 200) return [];
        await sleep(100);
      }
      const got = last && last.responses && last.responses[0];
      return [`/readyz did not answer 200 within 15 s: ${got ? `${got.status} ${got.body}` : last && last.error}`,
        `server log: ${main.log().slice(-800)}`];
    });
    if (!main || !main.port) return;

    await check('live: seed two users, a project each, and a session of the first', () => {
      seeded = seed(tag, token, prefix);
      return [];
    });
    if (!seeded) return;
    const { user, other_user, project, other_project } = seeded;
    const cookie = `neptun-session=${token}`;
    const good_path = `/api/users/${user}/projects/${project}`;
    const patch_body = (name) => JSON.stringify({ name, description: null, project_type: 'web-service', programming_language: 'go' });
    const json_headers = { Cookie: cookie, 'Content-Type': 'application/json' };
    // A request with one header field longer than the whole limit: refused however the
    // bytes arrive. No Connection: close, since the server must close by itself.
    const oversized = (method, target, headers, body) =>
      request(method, target, { ...headers, 'X-Pad': 'a'.repeat(limits.header + 64) }, body, true);

    // One request, its expected status, and how the document must describe the answer.
    const cases = [];
    const add = (method, label, expect, raw, extra = {}) => cases.push({ method, label, expect, raw, ...extra });

    for (const m of ['GET', 'PATCH']) {
      const h = m === 'PATCH' ? json_headers : { Cookie: cookie };
      const body = m === 'PATCH' ? patch_body(`Docs check ${tag}`) : undefined;
      add(m, 'the project of the session user', 200, request(m, good_path, h, body),
        { expect_body: (b) => (b.project && b.project.id === project && b.project.neptun_user_id === user &&
          (m === 'GET' || (b.project.name === `Docs check ${tag}` && b.project.description === null &&
            b.project.project_type === 'web-service' && b.project.programming_language === 'go'))) });
      add(m, 'ids that are not integers from 1 to 2147483647', 400,
        request(m, `/api/users/0/projects/2147483648`, h, body),
        { expect_body: (b) => b.errors && b.errors.map((e) => e.field).join() === 'user_id,project_id' });
      add(m, 'a project id with a leading zero', 400, request(m, `/api/users/${user}/projects/0${project}`, h, body),
        { expect_body: (b) => b.errors && b.errors.map((e) => e.field).join() === 'project_id' });
      add(m, 'Transfer-Encoding other than chunked (framing)', 400,
        request(m, good_path, { ...h, 'Transfer-Encoding': 'gzip' }, undefined, true),
        { expect_body: (b) => b.message === 'Transfer-Encoding must be exactly chunked' });
      add(m, 'no Cookie', 401, request(m, good_path, m === 'PATCH' ? { 'Content-Type': 'application/json' } : {}, body));
      add(m, 'a session token that Redis does not know', 401,
        request(m, good_path, { ...h, Cookie: `a=b; neptun-session=no-such-${tag}` }, body));
      add(m, 'a malformed session token', 401, request(m, good_path, { ...h, Cookie: 'neptun-session=a,b' }, body));
      add(m, 'another user in the path', 403, request(m, `/api/users/${other_user}/projects/${other_project}`, h, body));
      add(m, "another user's project", 404, request(m, `/api/users/${user}/projects/${other_project}`, h, body));
      add(m, 'a project that does not exist', 404, request(m, `/api/users/${user}/projects/2147483647`, h, body));
      add(m, 'Accept: text/html', 406, request(m, good_path, { ...h, Accept: 'text/html' }, body));
      add(m, 'Accept: application/json;q=0, */*', 406, request(m, good_path, { ...h, Accept: 'application/json;q=0, */*' }, body));
      add(m, `Content-Length past ${limits.body} bytes (no body sent)`, 413,
        request(m, good_path, { ...h, 'Content-Length': String(limits.body + 1) }, undefined, true));
      add(m, `header fields past ${limits.header} bytes`, 431, oversized(m, good_path, h, body));
    }
    add('GET', 'a query string is ignored', 200, request('GET', `${good_path}?name=x&user_id=0`, { Cookie: cookie }),
      { expect_body: (b) => b.project && b.project.id === project });
    add('PATCH', 'Content-Type: text/plain', 415, request('PATCH', good_path, { Cookie: cookie, 'Content-Type': 'text/plain' }, '{"name":"x"}'));
    add('PATCH', 'no Content-Type', 415, request('PATCH', good_path, { Cookie: cookie }, '{"name":"x"}'));
    add('PATCH', 'Content-Type: Application/JSON; charset=utf-8', 200,
      request('PATCH', good_path, { Cookie: cookie, 'Content-Type': 'Application/JSON; charset=utf-8' }, '{"description":"via charset"}'),
      { expect_body: (b) => b.project && b.project.description === 'via charset' });
    add('PATCH', 'broken fields, named all', 400,
      request('PATCH', good_path, json_headers, '{"name":"  ","description":5,"project_type":"Web-Site","programming_language":"rust","owner":1}'),
      { expect_body: (b) => b.errors && b.errors.map((e) => e.field).join() === 'name,description,project_type,programming_language,owner' });
    add('PATCH', 'a body that is not JSON', 400, request('PATCH', good_path, json_headers, '{"name":"a",}'),
      { expect_body: (b) => b.message === 'Invalid request body' });
    add('PATCH', 'a duplicate key', 400, request('PATCH', good_path, json_headers, '{"name":"a","name":"b"}'),
      { expect_body: (b) => b.errors && b.errors[0].message === 'appears more than once' });
    add('PATCH', 'a malformed chunked body', 400,
      request('PATCH', good_path, { ...json_headers, 'Transfer-Encoding': 'chunked' }, 'zz\r\n', true),
      { expect_body: (b) => b.message === 'Malformed request body' });
    add('PATCH', `a chunked body past ${limits.body} bytes`, 413,
      request('PATCH', good_path, { ...json_headers, 'Transfer-Encoding': 'chunked' },
        `${(limits.body + 16).toString(16)}\r\n${'{' + ' '.repeat(limits.body + 15)}\r\n0\r\n\r\n`, true));
    for (const m of ['PUT', 'POST', 'DELETE', 'OPTIONS', 'TRACE', 'HEAD']) {
      add(m, 'a method the path does not allow', 405, request(m, good_path, { Cookie: cookie }));
      add(m, 'Transfer-Encoding other than chunked (framing)', 400, request(m, good_path, { 'Transfer-Encoding': 'gzip' }, undefined, true));
      add(m, `header fields past ${limits.header} bytes`, 431, oversized(m, good_path, {}));
    }

    for (const c of cases) {
      await check(`live: ${c.method} ${c.expect} ${c.label}`, async () => {
        const r = await exchange(main.port, c.raw, { head: c.method === 'HEAD' });
        return judge(c.method, c.expect, r, c.expect_body, observed);
      });
    }

    // Conditional requests (CONTRACT.md §1.2): each step needs the ETag the previous one left.
    await check('live: ETag, If-None-Match (304) and If-Match (200, 412, 400)', async () => {
      const p = [];
      const step = async (method, label, expect, headers, body, expect_body) => {
        const r = await exchange(main.port, request(method, good_path, headers, body));
        p.push(...judge(method, expect, r, expect_body, observed).map((x) => `${method} ${label}: ${x}`));
        return r.responses && r.responses[0];
      };
      const first = await step('GET', 'read', 200, { Cookie: cookie });
      const tag = first && first.headers.etag;
      if (!tag) return [...p, 'the GET carried no ETag'];
      const not_modified = await step('GET', 'If-None-Match: current', 304, { Cookie: cookie, 'If-None-Match': `W/${tag}` });
      if (not_modified && not_modified.headers.etag !== tag) p.push(`304 ETag ${not_modified.headers.etag}, expected ${tag}`);
      await step('GET', 'malformed If-None-Match', 400, { Cookie: cookie, 'If-None-Match': 'nope' }, undefined,
        (b) => b.errors && b.errors[0].field === 'If-None-Match');
      const written = await step('PATCH', 'If-Match: current', 200, { ...json_headers, 'If-Match': tag },
        JSON.stringify({ description: `conditional ${tag}` }));
      const now = written && written.headers.etag;
      const refused = await step('PATCH', 'If-Match: stale', 412, { ...json_headers, 'If-Match': tag },
        JSON.stringify({ description: 'never written' }), (b) => b.message === 'Project has changed');
      if (refused && refused.headers.etag !== now) p.push(`412 ETag ${refused.headers.etag}, expected the current ${now}`);
      await step('PATCH', 'malformed If-Match', 400, { ...json_headers, 'If-Match': 'W/nope' },
        JSON.stringify({ description: 'never written' }), (b) => b.errors && b.errors[0].field === 'If-Match');
      return p;
    });

    await check('live: NEPTUN_REQUIRE_IF_MATCH=on answers 428 to a PATCH without If-Match', async () => {
      const strict = await start_server({ NEPTUN_REDIS_URL: redis_url, NEPTUN_DATABASE_URL: database_url,
        NEPTUN_REQUIRE_IF_MATCH: 'on', NEPTUN_THREADS: '1' });
      try {
        const deadline = Date.now() + 15000;
        while (Date.now() < deadline) {
          const ready = await exchange(strict.admin_port, request('GET', '/readyz')).catch(() => null);
          if (ready && ready.responses[0] && ready.responses[0].status === 200) break;
          await sleep(100);
        }
        const r = await exchange(strict.port, request('PATCH', good_path, json_headers, JSON.stringify({ name: 'x' })));
        return judge('PATCH', 428, r, (b) => b.message === 'If-Match required', observed);
      } finally {
        await strict.stop();
      }
    });

    // 503: a second server whose Redis is a closed port, capped at one connection.
    await check('live: a second server, whose Redis port is closed, starts', async () => {
      outage = await start_server({
        NEPTUN_REDIS_URL: `redis://127.0.0.1:${await closed_port()}/0`, NEPTUN_DATABASE_URL: database_url,
        NEPTUN_MAX_CONNECTIONS: '1', NEPTUN_THREADS: '1',
      });
      return [];
    });
    if (outage) {
      for (const m of ['GET', 'PATCH']) {
        await check(`live: ${m} 503 while Redis is unreachable`, async () => {
          const r = await exchange(outage.port, request(m, good_path, m === 'PATCH' ? json_headers : { Cookie: cookie },
            m === 'PATCH' ? patch_body('never written') : undefined));
          const p = judge(m, 503, r, (b) => b.message === 'Service unavailable, retry later', observed);
          if (m === 'PATCH') {
            const after = await exchange(main.port, request('GET', good_path, { Cookie: cookie }));
            const res = after.responses[0];
            if (!res || res.status !== 200 || JSON.parse(res.body).project.name === 'never written')
              p.push(`the PATCH answered 503 was written, or the project cannot be read back: ${res && res.body.slice(0, 200)}`);
          }
          return p;
        });
      }
      // Hold the one connection the cap allows (keep-alive; a 401 proves the server counts it).
      let holder = null;
      await check('live: hold the only connection of the capped server', async () => {
        const deadline = Date.now() + 5000;
        while (Date.now() < deadline) {
          holder = await open_held(outage.port, request('GET', '/api/users/1/projects/1', {}, undefined, true));
          if (holder.status === 401) return [];
          holder.socket.destroy();
          await sleep(50);
        }
        return [`the holding connection got ${holder && holder.status}, expected 401`];
      });
      for (const m of ['GET', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'TRACE', 'HEAD']) {
        await check(`live: ${m} 503 past the connection cap (refused before the request is read)`, async () => {
          const r = await exchange(outage.port, '', { head: m === 'HEAD' });
          return judge(m, 503, r, m === 'HEAD' ? null : (b) => b.message === 'Too many connections', observed);
        });
      }
      if (holder) holder.socket.destroy();
    }

    await check('live: pipelined requests are answered in order, on one connection', async () => {
      const name = `Pipelined ${tag}`;
      const raw = request('GET', good_path, { Cookie: cookie }, undefined, true) +
        request('GET', `/api/users/${user}/projects/2147483647`, { Cookie: cookie }, undefined, true) +
        request('PATCH', good_path, json_headers, JSON.stringify({ name }), true) +
        request('GET', good_path, { Cookie: cookie });
      const r = await exchange(main.port, raw, { heads: [false, false, false, false] });
      const got = r.responses.map((x) => x.status);
      const p = [];
      if (got.join() !== '200,404,200,200') p.push(`statuses ${got.join()}, expected 200,404,200,200`);
      else if (JSON.parse(r.responses[3].body).project.name !== name) p.push('the GET after the PATCH did not see its write');
      const ms = ['GET', 'GET', 'PATCH', 'GET'];
      r.responses.forEach((res, i) => p.push(...judge(ms[i], res.status, { responses: [res], extra: '' }, null, observed)
        .map((x) => `response ${i + 1}: ${x}`)));
      return p;
    });

    await check('live: a response to HEAD has no content (RFC 9110 9.3.2), so the next response is intact', async () => {
      const raw = request('HEAD', good_path, {}, undefined, true) + request('GET', good_path, {});
      const r = await exchange(main.port, raw, { heads: [true, false] });
      const got = r.responses.map((x) => x.status);
      if (got.join() === '405,401' && !r.extra.length) return [];
      // Closing the connection right after the HEAD's header is fine too.
      if (got.join() === '405' && !r.extra.length && !r.parse_error) return { problems: [], note: 'closed after HEAD' };
      const stray = r.responses[0] ? r.raw.slice(r.responses[0].header_length, r.responses[0].header_length + 80) : '';
      return [`HEAD then GET on one connection: statuses [${got}]${r.parse_error ? `, then unparsable: ${r.parse_error}` : ''}; ` +
        `bytes after the 405's header: ${JSON.stringify(stray)} (a response to HEAD must end with its header)`];
    });

    await check(`live: header fields of ${limits.header} bytes + 64 in all, in several fields, get 431 ("8 KiB in all")`, async () => {
      const fields = {};
      let raw = request('GET', good_path, { Cookie: cookie });
      for (let i = 0; raw.length < limits.header + 64; i++) {
        fields[`X-Pad-${i}`] = 'a'.repeat(Math.min(1000, limits.header + 64 - raw.length));
        raw = request('GET', good_path, { Cookie: cookie, ...fields });
      }
      const r = await exchange(main.port, raw);
      const res = r.responses[0];
      if (!res) return [`no response (${r.error || r.parse_error})`];
      return res.status === 431 ? [] : [`${raw.length} bytes of request line and header fields in ${Object.keys(fields).length + 3} fields answered ${res.status}, expected 431`];
    });

    await check('live: paths outside the document answer 404 Not found', async () => {
      const error_schema = { $ref: '#/components/schemas/Error' };
      const p = [];
      for (const target of ['/', '/api', '/api/users/1/projects', `${good_path}/`, `/api/users/${user}/projects//`,
        `/api/users/${user}/project/${project}`, '/livez', '/readyz', '/metrics']) {
        const r = await exchange(main.port, request('GET', target, { Cookie: cookie }));
        const res = r.responses[0];
        if (!res) { p.push(`${target}: no response`); continue; }
        if (res.status !== 404) p.push(`${target}: ${res.status}, expected 404`);
        try {
          const body = JSON.parse(res.body);
          p.push(...schema_problems(error_schema, body, target));
          if (body.message !== 'Not found') p.push(`${target}: message ${body.message}`);
        } catch { p.push(`${target}: not JSON: ${res.body.slice(0, 80)}`); }
      }
      return p;
    });

    await check('live: the id pattern of the document agrees with the server', async () => {
      const pattern = new RegExp(deref(doc.components.parameters.project_id).schema.pattern, 'u');
      // The bound 2147483647 is in the parameter's description; a pattern cannot say it.
      const documented = (s) => pattern.test(s) && (s.length < 10 || s <= '2147483647');
      const p = [];
      // Raw path segments, as the server sees them (it does not percent-decode).
      const samples = ['1', '9', '10', '2147483647', '2147483648', '9999999999', '0', '00', '01', '-1', '+1', '1.0',
        '1e3', '0x1', 'abc', '12345678901', '%D9%A3'];
      for (const s of samples) {
        const r = await exchange(main.port, request('GET', `/api/users/${user}/projects/${s}`, { Cookie: cookie }));
        const status = r.responses[0] && r.responses[0].status;
        const value = decodeURIComponent(s);
        if ((status !== 400) !== documented(value))
          p.push(`project_id ${JSON.stringify(value)}: server ${status}, document says ${documented(value) ? 'valid' : 'invalid'}`);
      }
      return { problems: p, note: `${samples.length} ids` };
    });

    await check('live: the request body schema agrees with the server on every field rule', async () => {
      const body_schema = deref(doc.paths[api_path].patch.requestBody).content['application/json'].schema;
      const validate = validator_for(body_schema);
      const p = [];
      const samples = body_samples();
      for (const body of samples) {
        const text = JSON.stringify(body);
        const r = await exchange(main.port, request('PATCH', good_path, json_headers, text));
        const res = r.responses[0];
        if (!res) { p.push(`${text.slice(0, 60)}: no response (${r.error || r.parse_error})`); continue; }
        p.push(...judge('PATCH', res.status, r, null, observed).map((x) => `${text.slice(0, 60)}: ${x}`));
        const doc_ok = validate(body);
        if ((res.status === 200) !== doc_ok || ![200, 400].includes(res.status))
          p.push(`${text.slice(0, 80)}${text.length > 80 ? '...' : ''}: server ${res.status}, document says ${doc_ok ? 'valid' : 'invalid'}`);
      }
      return { problems: p, note: `${samples.length} bodies` };
    });

    for (const m of methods) {
      const op = doc.paths[api_path][m];
      if (!op) continue;
      await check(`live: every status declared for ${m.toUpperCase()} was answered`, () => {
        const missing = Object.keys(op.responses || {}).filter((s) => !not_provoked.has(s) && !observed.get(m).has(s));
        return { problems: missing.map((s) => `${m.toUpperCase()} ${s} is declared but no request provoked it`),
          note: `${[...observed.get(m)].sort().join(', ')}` };
      });
    }
  } finally {
    if (seeded) unseed(tag, token, prefix);
    for (const s of [outage, main]) if (s) await s.stop();
  }
}

// Checks one exchange against the document: the status is declared for the operation, the
// declared headers are there and fit, the body is JSON and fits the declared schema.
function judge(method, expect, r, expect_body, observed) {
  const p = [];
  const res = r.responses && r.responses[0];
  if (!res) return [`no response (${r.error || r.parse_error || 'connection closed'})`];
  if (res.status !== expect) p.push(`status ${res.status}, expected ${expect}: ${res.body.slice(0, 200)}`);
  const m = method.toLowerCase();
  const op = doc.paths[api_path][m];
  const declared = op && op.responses && op.responses[String(res.status)];
  if (!declared) return [...p, `${method} ${res.status} is not declared in docs/openapi.yaml`];
  observed.get(m).add(String(res.status));
  const d = deref(declared);
  for (const [name, h0] of Object.entries(d.headers || {})) {
    const h = deref(h0);
    const value = res.headers[name.toLowerCase()];
    if (value === undefined) { if (h.required) p.push(`no ${name} header`); continue; }
    if (h.schema) p.push(...schema_problems(h.schema, value, `${name}: ${value}`));
  }
  if (m === 'head') return p;  // the content of a response to HEAD is nothing (see the HEAD check)
  const mt = d.content && d.content['application/json'];
  if (!mt) {
    if (res.body.length) p.push(`a body where the document declares none: ${res.body.slice(0, 100)}`);
    return p;
  }
  const type = (res.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') p.push(`Content-Type ${res.headers['content-type']}, expected application/json`);
  let body;
  try { body = JSON.parse(res.body); } catch { return [...p, `the body is not JSON: ${res.body.slice(0, 100)}`]; }
  p.push(...schema_problems(mt.schema, body, 'body'));
  if (expect_body && !expect_body(body)) p.push(`unexpected body: ${res.body.slice(0, 300)}`);
  if (body && typeof body.statusCode === 'number' && body.statusCode !== res.status)
    p.push(`statusCode ${body.statusCode} in a ${res.status} response`);
  return p;
}

// Bodies that exercise each field rule; the server and the document must agree on each.
function body_samples() {
  const s = (n, c) => c.repeat(n);
  return [
    { name: 'x' }, { name: ' padded ' }, { name: s(255, 'é') }, { name: s(255, '😀') }, { name: '\u200b' },
    { name: '\u180e' }, { description: '' }, { description: null }, { description: s(10000, 'd') },
    { description: s(10000, '😀') }, { project_type: 'web-site' }, { project_type: 'web-service' },
    { project_type: 'web-app' },
    ...['typescript', 'javascript', 'php', 'go', 'python', 'java', 'kotlin', 'ruby', 'elixir'].map((l) => ({ programming_language: l })),
    { name: 'All four', description: 'd', project_type: 'web-app', programming_language: 'kotlin' },
    {}, [], 'x', 1, null, true, [{ name: 'x' }],
    { name: '' }, { name: '   ' }, { name: '\t\n\r' }, { name: '\u00a0\u3000\u2028' }, { name: '\u0085' }, { name: '\ufeff' },
    { name: 'a\u0000' }, { name: s(256, 'é') }, { name: s(256, '😀') }, { name: ` ${s(255, 'x')}` }, { name: null },
    { name: 1 }, { name: ['x'] }, { name: { x: 1 } },
    { description: s(10001, 'd') }, { description: 'a\u0000b' }, { description: 1 }, { description: false },
    { project_type: 'Web-Site' }, { project_type: 'web_site' }, { project_type: null }, { project_type: 1 },
    { programming_language: 'rust' }, { programming_language: 'TypeScript' }, { programming_language: null },
    { owner: 1 }, { body: 1 }, { id: 5, name: 'x' }, { neptun_user_id: 2 }, { name: 'x', created_at: '2020-01-01T00:00:00.000Z' },
  ];
}

// ---------------------------------------------------------------------------------------
// Stores and servers

function run(cmd, args, input) {
  const r = cp.spawnSync(cmd, args, { encoding: 'utf8', input, timeout: 20000 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 2).join(' ')} exited ${r.status}: ${(r.stderr || '').trim().slice(0, 300)}`);
  return r.stdout.trim();
}

function psql(sql) {
  return run('psql', [database_url, '-X', '-v', 'ON_ERROR_STOP=1', '-tAq', '-c', sql]);
}

function seed(tag, token, prefix) {
  const user = Number(psql(`INSERT INTO neptun_user (primary_email) VALUES ('docs-check-${tag}@example.invalid') RETURNING id`));
  const other_user = Number(psql(`INSERT INTO neptun_user (primary_email) VALUES ('docs-check-${tag}-other@example.invalid') RETURNING id`));
  const project = Number(psql(`INSERT INTO neptun_user_project (name, type, main_language, neptun_user_id) VALUES ('Docs check', 'web-app', 'typescript', ${user}) RETURNING id`));
  const other_project = Number(psql(`INSERT INTO neptun_user_project (name, description, type, main_language, neptun_user_id) VALUES ('Not yours', 'x', 'web-site', 'php', ${other_user}) RETURNING id`));
  const session = JSON.stringify({ user: { id: user, primary_email: `docs-check-${tag}@example.invalid` }, loggedInAt: new Date().toISOString() });
  const reply = run('redis-cli', ['-u', redis_url, '--no-raw', 'SET', `${prefix}${token}`, session, 'EX', '600']);
  if (!/OK/.test(reply)) throw new Error(`redis-cli SET answered ${reply}`);
  for (const v of [user, other_user, project, other_project])
    if (!Number.isInteger(v) || v < 1) throw new Error(`seeding returned ids ${user} ${other_user} ${project} ${other_project}`);
  return { user, other_user, project, other_project };
}

function unseed(tag, token, prefix) {
  try { psql(`DELETE FROM neptun_user WHERE primary_email LIKE 'docs-check-${tag}%'`); } catch (e) { console.log(`note: cleanup: ${e.message}`); }
  try { run('redis-cli', ['-u', redis_url, 'DEL', `${prefix}${token}`]); } catch (e) { console.log(`note: cleanup: ${e.message}`); }
}

// Starts the binary on free loopback ports; resolves once it logged event=listening.
function start_server(settings) {
  return new Promise((resolve, reject) => {
    const env = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('NEPTUN_')) env[k] = v;
    Object.assign(env, { NEPTUN_LISTEN: '127.0.0.1:0', NEPTUN_ADMIN_LISTEN: '127.0.0.1:0', NEPTUN_THREADS: '2',
      NEPTUN_ACCESS_LOG_SAMPLE: '0', NEPTUN_REDIS_CONNECT_TIMEOUT_MS: '500', NEPTUN_REDIS_TIMEOUT_MS: '500' }, settings);
    const child = cp.spawn(opts.binary, ['serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    let log = '';
    let done = false;
    const timer = setTimeout(() => finish(new Error(`no event=listening within 10 s; log: ${log.slice(-600)}`)), 10000);
    function finish(err, ports) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) { child.kill('SIGKILL'); reject(err); return; }
      resolve({
        ...ports,
        log: () => log,
        stop: () => new Promise((res) => {
          if (child.exitCode !== null || child.signalCode) return res();
          const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
          child.once('exit', () => { clearTimeout(kill); res(); });
          child.kill('SIGTERM');
        }),
      });
    }
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      log = (log + d).slice(-20000);
      const m = /event=listening port=(\d+) admin_port=(\d+)/.exec(log);
      if (m) finish(null, { port: Number(m[1]), admin_port: Number(m[2]) });
    });
    child.on('exit', (code, sig) => finish(new Error(`exited ${code ?? sig} before listening; log: ${log.slice(-600)}`)));
    child.on('error', (e) => finish(e));
  });
}

// A loopback port that nothing listens on.
function closed_port() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: the checks need framing that ordinary clients refuse to send.

function request(method, target, headers = {}, body, keep_alive = false) {
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1'];
  const names = Object.keys(headers).map((h) => h.toLowerCase());
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body !== undefined && !names.includes('content-length') && !names.includes('transfer-encoding'))
    lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  if (!keep_alive) lines.push('Connection: close');
  return `${lines.join('\r\n')}\r\n\r\n${body ?? ''}`;
}

// Sends raw bytes on a new connection and reads until the server closes it: the last
// request says Connection: close, or is one the server must close the connection after
// (400 framing, 413, 431); after 5 s it gives up. o.head / o.heads: which responses answer
// a HEAD (they end with their header).
function exchange(port, raw, o = {}) {
  return new Promise((resolve) => {
    const chunks = [];
    let error = null;
    const socket = net.connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => { error = 'timed out after 5 s'; socket.destroy(); }, 5000);
    socket.on('connect', () => { if (raw.length) socket.write(raw); });
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', (e) => { error = error || e.code || e.message; });
    socket.on('close', () => {
      clearTimeout(timer);
      const buf = Buffer.concat(chunks);
      const heads = o.heads || [Boolean(o.head)];
      resolve({ ...parse_responses(buf, heads), error, raw: buf.toString('latin1') });
    });
  });
}

// Opens a keep-alive connection, sends one request, resolves with its status once it has
// the whole response, and leaves the connection open.
function open_held(port, raw) {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => resolve({ socket, status: 'timeout' }), 3000);
    socket.on('connect', () => socket.write(raw));
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parse_responses(buf, [false]);
      if (r.responses.length) { clearTimeout(timer); resolve({ socket, status: r.responses[0].status }); }
    });
    socket.on('error', () => {});
    socket.on('close', () => { clearTimeout(timer); resolve({ socket, status: 'closed' }); });
  });
}

function parse_responses(buf, heads) {
  const responses = [];
  let at = 0, parse_error = null, i = 0;
  while (at < buf.length) {
    const end = buf.indexOf('\r\n\r\n', at);
    if (end < 0) { parse_error = `incomplete header: ${JSON.stringify(buf.slice(at, at + 80).toString('latin1'))}`; break; }
    const lines = buf.slice(at, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/(\d\.\d) (\d{3}) ?(.*)$/.exec(lines[0]);
    if (!m) { parse_error = `not a status line: ${JSON.stringify(lines[0].slice(0, 80))}`; break; }
    const headers = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      const k = l.slice(0, c).trim().toLowerCase();
      const v = l.slice(c + 1).trim();
      headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
    }
    const status = Number(m[2]);
    const header_length = end + 4;
    at = header_length;
    if (status >= 100 && status < 200) continue;  // 100 Continue
    const is_head = heads[Math.min(i, heads.length - 1)];
    i++;
    let length = 0;
    if (!is_head && status !== 204 && status !== 304) length = 'content-length' in headers ? Number(headers['content-length']) : buf.length - at;
    const body = buf.slice(at, at + length).toString('utf8');
    if (at + length > buf.length) parse_error = `body shorter than Content-Length ${length}`;
    at += length;
    responses.push({ status, version: m[1], headers, body, header_length });
    if (i >= heads.length && heads.length > 1) break;
  }
  return { responses, parse_error, extra: buf.slice(Math.min(at, buf.length)).toString('latin1') };
}

// ---------------------------------------------------------------------------------------

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function parse_args(argv) {
  const o = { root: null, cache: null, binary: null };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in o)) throw new Error(`unknown argument ${argv[i]}`);
    o[k] = argv[i + 1];
  }
  if (!o.root || !o.cache) throw new Error('usage: check.mjs --root DIR --cache DIR [--binary FILE]');
  for (const k of Object.keys(o)) if (o[k]) o[k] = path.resolve(o[k]);
  return o;
}
