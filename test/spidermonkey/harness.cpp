// Runs anybios design-document functions in real SpiderMonkey 78 (the engine of CouchDB 3.2/3.3
// builds), called the way CouchDB's query server calls them, so tests can compare the results with
// our Node sandbox (ddocs/sandbox.ts).
//
// stdin:  {"ddoc": {...}, "calls": [{"fn": "validate_doc_update", "args": [newDoc, oldDoc, userCtx, secObj]},
//                                   {"fn": "views.by_type.map", "doc": {...}}, ...]}
// stdout: a JSON array, one result per call:
//   validate (or any other function given "args"): {"ok":true} (plus "value" when it returned one),
//     or {"forbidden":"..."} / {"unauthorized":"..."} / {"error":"..."}
//   map (given "doc"): the emitted [key, value] pairs, or {"error":"..."} when the map threw.
// Exit 2 (message on stderr) when the request itself cannot be run.
//
// Build: g++ -std=c++17 harness.cpp $(pkg-config --cflags --libs mozjs-78)   (Debian: libmozjs-78-dev)

#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>

#include <jsapi.h>
#include <js/CompilationAndEvaluation.h>
#include <js/Conversions.h>
#include <js/Initialization.h>
#include <js/SourceText.h>

// All ddoc handling is JavaScript, so that it runs in the engine under test. The module loader and
// the call conventions follow CouchDB 3.x share/server (util.js, validate.js, views.js, the sources
// of couchjs's main.js); comments mark where and why this differs.
static const char* kDriver = R"JS(
// --- util.js: CommonJS require over the ddoc ----------------------------------------------------
// An id is split on '/' and walked through the ddoc's own fields ('lib/rules' -> ddoc.lib.rules);
// '.' and '..' walk from the requiring module's parent object, so './schemas' inside lib/rules is
// ddoc.lib.schemas. The result must be a string of module source. (Same algorithm as CouchDB.)
var resolveModule = function (names, mod, root) {
  if (names.length == 0) {
    if (typeof mod.current != 'string') {
      throw ['error', 'invalid_require_path', 'Must require a JavaScript string, not: ' + typeof mod.current];
    }
    return { current: mod.current, parent: mod.parent, id: mod.id, exports: {} };
  }
  var n = names.shift();
  if (n == '..') {
    if (!(mod.parent && mod.parent.parent)) {
      throw ['error', 'invalid_require_path', 'Object has no parent ' + JSON.stringify(mod.current)];
    }
    return resolveModule(names, {
      id: mod.id.slice(0, mod.id.lastIndexOf('/')),
      parent: mod.parent.parent,
      current: mod.parent.current
    });
  } else if (n == '.') {
    if (!mod.parent) {
      throw ['error', 'invalid_require_path', 'Object has no parent ' + JSON.stringify(mod.current)];
    }
    return resolveModule(names, { parent: mod.parent, current: mod.current, id: mod.id });
  } else if (root) {
    // A non-relative first segment starts at the ddoc itself.
    mod = { current: root };
  }
  if (mod.current[n] === undefined) {
    throw ['error', 'invalid_require_path', 'Object has no property "' + n + '". ' + JSON.stringify(mod.current)];
  }
  return resolveModule(names, { current: mod.current[n], parent: mod, id: mod.id ? mod.id + '/' + n : n });
};

// CouchDB's Couch.compileFunction. CouchDB evaluates each function in a fresh sandbox global
// (native evalcx) holding emit/log/require/...; here the helpers are globals of this one realm and
// `require` is bound lexically per compiled function, which gives the function the same names.
function compileFunction(source, ddoc, name) {
  if (!source) throw ['error', 'not_found', 'missing function'];
  var require = function (id, module) {
    module = module || {};
    var newModule = resolveModule(id.split('/'), module.parent, ddoc);
    if (!ddoc._module_cache.hasOwnProperty(newModule.id)) {
      // Placeholder first, so a circular require gets {} instead of recursing forever.
      ddoc._module_cache[newModule.id] = {};
      var s = '(function (module, exports, require) { ' + newModule.current + '\n });';
      try {
        var func = (0, eval)(s);
        func.apply(null, [newModule, newModule.exports, function (id) { return require(id, newModule); }]);
      } catch (e) {
        throw ['error', 'compilation_error', "Module require('" + id + "') raised error " + describe(e)];
      }
      // Read after the body ran, so `module.exports = ...` replaces the exports object.
      ddoc._module_cache[newModule.id] = newModule.exports;
    }
    return ddoc._module_cache[newModule.id];
  };
  if (ddoc && !ddoc._module_cache) ddoc._module_cache = {};
  var fn;
  try {
    // CouchDB 3.x (rewrite_fun.js) wraps a source that starts with `function` and ends with `}` in
    // parentheses, so the anonymous function is an expression; our sources are all of that form.
    fn = (0, eval)('(function (require) { return (' + source + '\n); })')(ddoc ? require : undefined);
  } catch (err) {
    throw ['error', 'compilation_error', describe(err) + ' (' + source + ')'];
  }
  if (typeof fn !== 'function') {
    throw ['error', 'compilation_error', 'Expression does not eval to a function. (' + source + ')'];
  }
  return fn;
}

// --- the sandbox helpers CouchDB gives every function ------------------------------------------
var mapResults = [];
function emit(key, value) { mapResults.push([key, value]); }
function log(message) {}
function sum(values) { var s = 0; for (var i = 0; i < values.length; i++) s += values[i]; return s; }
function toJSON(x) { return JSON.stringify(x); }
function isArray(x) { return Array.isArray(x); }

// views.js seals every document before handing it to the maps (Couch.recursivelySeal).
function deepFreeze(obj) {
  if (obj === null || typeof obj !== 'object' || Object.isFrozen(obj)) return obj;
  Object.freeze(obj);
  for (var k in obj) if (Object.prototype.hasOwnProperty.call(obj, k)) deepFreeze(obj[k]);
  return obj;
}

function describe(e) {
  if (e instanceof Error) return e.name + ': ' + e.message;
  try { return JSON.stringify(e); } catch (x) { return String(e); }
}

// How CouchDB reads what a validate function threw: a lone {forbidden} is a 403, a lone
// {unauthorized} a 401; a real Error (name and stack) crashes the query server (500), and any other
// value is an unknown error. All of them refuse the write.
function refusal(e) {
  if (e && typeof e === 'object' && !(e instanceof Error)) {
    if (typeof e.forbidden !== 'undefined') return { forbidden: e.forbidden };
    if (typeof e.unauthorized !== 'undefined') return { unauthorized: e.unauthorized };
    if (Array.isArray(e) && e[0] === 'error') return { error: e[1] + ': ' + e[2] };
  }
  return { error: describe(e) };
}

function lookup(ddoc, path) {
  var v = ddoc, parts = path.split('.');
  for (var i = 0; i < parts.length && v != null; i++) v = v[parts[i]];
  return v;
}

function run(request) {
  var ddoc = request.ddoc;
  var compiled = {};
  var out = [];
  for (var i = 0; i < request.calls.length; i++) {
    var call = request.calls[i];
    try {
      if (!compiled[call.fn]) {
        // Views get only views.lib to require from (CouchDB's add_lib); other functions the ddoc.
        var isMap = /\.map$/.test(call.fn);
        var scope = isMap ? { views: { lib: ddoc.views && ddoc.views.lib } } : ddoc;
        compiled[call.fn] = compileFunction(lookup(ddoc, call.fn), scope, call.fn);
      }
      var fn = compiled[call.fn];
      if (call.hasOwnProperty('doc')) {
        mapResults = [];
        try {
          fn(deepFreeze(call.doc));
          // Through JSON, as CouchDB sends rows to the view index (undefined values become null).
          out.push(JSON.parse(JSON.stringify(mapResults)));
        } catch (e) {
          out.push({ error: describe(e) });   // CouchDB logs this and indexes nothing for the doc
        }
      } else {
        // validate.js: fun.apply(ddoc, args); returning normally allows the write.
        var value = fn.apply(ddoc, call.args || []);
        out.push(typeof value === 'undefined' ? { ok: true } : { ok: true, value: value });
      }
    } catch (e) {
      out.push(refusal(e));
    }
  }
  return JSON.stringify(out);
}

run(JSON.parse(__request));
)JS";

static const JSClass kGlobalClass = {"global", JSCLASS_GLOBAL_FLAGS, &JS::DefaultGlobalClassOps};

// Prints the pending exception (e.g. a syntax error in the driver or malformed request JSON).
static int fail(JSContext* cx, const char* what) {
  std::string msg = what;
  JS::RootedValue exc(cx);
  if (JS_IsExceptionPending(cx) && JS_GetPendingException(cx, &exc)) {
    JS_ClearPendingException(cx);
    JS::RootedString s(cx, JS::ToString(cx, exc));
    if (s) {
      JS::UniqueChars utf8 = JS_EncodeStringToUTF8(cx, s);
      if (utf8) msg += std::string(": ") + utf8.get();
    }
  }
  std::fprintf(stderr, "harness: %s\n", msg.c_str());
  return 2;
}

static int runRequest(JSContext* cx, const std::string& input) {
  JS::RealmOptions options;
  JS::RootedObject global(cx, JS_NewGlobalObject(cx, &kGlobalClass, nullptr, JS::FireOnNewGlobalHook, options));
  if (!global) return fail(cx, "cannot create global");
  JSAutoRealm realm(cx, global);
  if (!JS::InitRealmStandardClasses(cx)) return fail(cx, "cannot init standard classes");

  // The request goes in as one string and is parsed by the engine's own JSON.parse.
  JS::RootedString request(cx, JS_NewStringCopyUTF8N(cx, JS::UTF8Chars(input.data(), input.size())));
  if (!request || !JS_DefineProperty(cx, global, "__request", request, JSPROP_READONLY)) {
    return fail(cx, "cannot pass the request");
  }

  JS::CompileOptions opts(cx);
  opts.setFileAndLine("harness-driver.js", 1);
  JS::SourceText<mozilla::Utf8Unit> source;
  if (!source.init(cx, kDriver, std::strlen(kDriver), JS::SourceOwnership::Borrowed)) {
    return fail(cx, "cannot load driver");
  }
  JS::RootedValue result(cx);
  if (!JS::Evaluate(cx, opts, source, &result)) return fail(cx, "request failed");
  if (!result.isString()) return fail(cx, "driver returned no string");

  JS::RootedString out(cx, result.toString());
  JS::UniqueChars utf8 = JS_EncodeStringToUTF8(cx, out);
  if (!utf8) return fail(cx, "cannot encode result");
  std::fputs(utf8.get(), stdout);
  std::fputc('\n', stdout);
  return 0;
}

int main() {
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (!JS_Init()) {
    std::fprintf(stderr, "harness: JS_Init failed\n");
    return 2;
  }
  JSContext* cx = JS_NewContext(JS::DefaultHeapMaxBytes);
  if (!cx || !JS::InitSelfHostedCode(cx)) {
    std::fprintf(stderr, "harness: cannot create a SpiderMonkey context\n");
    return 2;
  }
  int rc = runRequest(cx, input);
  JS_DestroyContext(cx);
  JS_ShutDown();
  return rc;
}
