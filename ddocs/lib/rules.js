// Document rules shared by every anybios validate_doc_update: which types a database holds,
// who may write them, and the schema check. Plain ES5 CommonJS: it runs inside CouchDB's
// SpiderMonkey, in the embedded server's vm sandbox, and (loaded the same way) in the API.
// Invariants: `_id` is `<type>:<name>`; `node:`/`status:` documents have one writer, the node's agent.
var schemas = require('lib/schemas');

var NODE_DB_PREFIX = 'anybios-node-';
var CATALOG_TYPES = { template: true };
var NODE_TYPES = { system: true, volume: true, node: true, status: true };
var AGENT_ONLY = { node: true, status: true };

function hasRole(userCtx, role) {
  var roles = (userCtx && userCtx.roles) || [];
  for (var i = 0; i < roles.length; i++) if (roles[i] === role) return true;
  return false;
}

// Readable meanings of the schema patterns, so errors say what is wanted rather than a regex.
var PATTERN_MEANING = {
  '^[a-z0-9][a-z0-9-]{0,62}$': 'must be a name: 1-63 of a-z, 0-9 and -, starting with a letter or digit',
  '^(/(?!\\.\\.?(/|$))[^/\\u0000]+)+/?$|^/$': 'must be an absolute path without . or .. parts',
  '^[0-9a-f]{64}$': 'must be a sha256 in lowercase hex (64 characters)',
  '^[A-Za-z_][A-Za-z0-9_]{0,127}$': 'must be an environment variable name',
  '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$': 'must be an ISO time in UTC (toISOString)'
};

function describeError(e) {
  var path = e.instancePath || '';
  var p = e.params || {};
  if (e.keyword === 'additionalProperties') {
    // Attachments would be content served from the server's origin: only templates carry them.
    if (p.additionalProperty === '_attachments') return { path: path + '/_attachments', message: 'not allowed: only template documents carry attachments' };
    return { path: path + '/' + p.additionalProperty, message: 'unknown field' };
  }
  if (e.keyword === 'required') return { path: path + '/' + p.missingProperty, message: 'is required' };
  if (e.keyword === 'enum') return { path: path || '/', message: 'must be one of: ' + (p.allowedValues || []).join(', ') };
  if (e.keyword === 'const') return { path: path || '/', message: 'must be ' + JSON.stringify(p.allowedValue) };
  if (e.keyword === 'pattern') return { path: path || '/', message: PATTERN_MEANING[p.pattern] || 'must match ' + p.pattern };
  if (e.keyword === 'not' || e.keyword === 'if') return { path: path || '/', message: 'field combination not allowed for this kind/source' };
  return { path: path || '/', message: e.message || e.keyword };
}

/** Schema and naming errors of one document, as [{path, message}] (empty when valid). */
function errorsOf(doc) {
  if (!doc || typeof doc !== 'object') return [{ path: '/', message: 'must be an object' }];
  var id = doc._id;
  if (typeof id !== 'string') return [{ path: '/_id', message: 'is required' }];
  var colon = id.indexOf(':');
  var type = colon > 0 ? id.slice(0, colon) : '';
  var validate = Object.prototype.hasOwnProperty.call(schemas, type) ? schemas[type] : null;
  if (!validate) return [{ path: '/_id', message: 'must be <type>:<name> with type one of: template, system, volume, node, status' }];
  var out = [];
  if (!validate(doc)) {
    var errs = validate.errors || [];
    var seen = {};
    for (var i = 0; i < errs.length; i++) {
      // if/then failures repeat what the inner keyword already said.
      if (errs[i].keyword === 'if' && errs.length > 1) continue;
      var d = describeError(errs[i]);
      var key = d.path + ' ' + d.message;
      if (!seen[key]) { seen[key] = true; out.push(d); }
    }
  }
  if (!out.length && doc.type + ':' + doc.name !== id) out.push({ path: '/name', message: 'must equal the name part of _id (' + id.slice(colon + 1) + ')' });
  return out;
}

function typeOf(id) {
  var colon = typeof id === 'string' ? id.indexOf(':') : -1;
  return colon > 0 ? id.slice(0, colon) : '';
}

function forbid(msg) { throw { forbidden: msg }; }

/** The whole rule set for one write. `dbKind` is 'catalog' or 'node'. Throws {forbidden}/{unauthorized}. */
function validate(dbKind, newDoc, oldDoc, userCtx, secObj) {
  var id = newDoc._id;
  var admin = hasRole(userCtx, '_admin');
  if (id.indexOf('_design/') === 0) {
    if (!admin) forbid('only admins write design documents');
    return;
  }
  if (!userCtx || !userCtx.name) throw { unauthorized: 'log in to write' };
  var type = typeOf(id);
  var who = userCtx.name;
  if (dbKind === 'catalog') {
    if (!admin && !hasRole(userCtx, 'operator')) forbid('only admins and operators write the catalog (you are ' + who + ')');
    if (!CATALOG_TYPES[type]) forbid('_id: the catalog holds template:<name> documents, not "' + id + '"');
  } else {
    var db = (userCtx && userCtx.db) || '';
    var nodeId = db.indexOf(NODE_DB_PREFIX) === 0 ? db.slice(NODE_DB_PREFIX.length) : '';
    var nodeUser = 'node-' + nodeId;
    var isNode = nodeId !== '' && who === nodeUser;
    if (!admin && !isNode && !hasRole(userCtx, 'operator')) forbid('only admins, operators and ' + nodeUser + ' write ' + db);
    if (!NODE_TYPES[type]) forbid('_id: a node database holds system:, volume:, node: and status: documents, not "' + id + '"');
    if (AGENT_ONLY[type] && !admin && !isNode) forbid(type + ': documents are written only by the node\'s agent (' + nodeUser + ')');
    if (type === 'node' && id !== 'node:' + nodeId) forbid('_id: this database holds only node:' + nodeId);
  }
  if (newDoc._deleted) {
    // A deletion is not schema-checked, but it must not smuggle attachments past the schema either.
    if (newDoc._attachments && type !== 'template') forbid('invalid ' + type + ' ' + id + ': /_attachments not allowed: only template documents carry attachments');
    return;
  }
  // A node's credential may sit on a stolen device: it must not be able to ask for root on the host.
  if (type === 'system' && newDoc.privileged === true && !admin && !hasRole(userCtx, 'operator')) {
    forbid('invalid system ' + id + ': /privileged: only admins and operators may make a system privileged (root of the host, no user namespace); ' + who + ' may not');
  }
  var errs = errorsOf(newDoc);
  if (errs.length) {
    var parts = [];
    for (var i = 0; i < errs.length; i++) parts.push(errs[i].path + ' ' + errs[i].message);
    forbid('invalid ' + type + ' ' + id + ': ' + parts.join('; '));
  }
}

exports.errorsOf = errorsOf;
exports.validate = validate;
exports.typeOf = typeOf;
