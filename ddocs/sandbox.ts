// Runs design-document functions the way CouchDB's JS engine does: in an isolated vm context,
// with CommonJS `require` over the ddoc's own fields, JSON-copied arguments and a time limit.
import vm from 'node:vm';

export type DesignDocLike = { _id?: string } & object;

export class DdocFunctionError extends Error {
  constructor(message: string, readonly thrown: unknown) {
    super(message);
  }
}

export const PRELUDE = `
var __modules = {};
function __makeRequire(ddoc, base) {
  return function require(id) {
    var parts = (id.charAt(0) === '.' ? base.concat(id.split('/')) : id.split('/'));
    var path = [];
    for (var i = 0; i < parts.length; i++) {
      if (parts[i] === '..') path.pop(); else if (parts[i] !== '.' && parts[i] !== '') path.push(parts[i]);
    }
    var key = path.join('/');
    if (__modules[key]) return __modules[key].exports;
    var src = ddoc;
    for (var j = 0; j < path.length; j++) src = src == null ? undefined : src[path[j]];
    if (typeof src !== 'string') throw new Error('require: no module ' + id);
    var module = { exports: {}, id: key };
    __modules[key] = module;
    var fn = new Function('module', 'exports', 'require', src);
    fn(module, module.exports, __makeRequire(ddoc, path.slice(0, -1)));
    return module.exports;
  };
}
`;

/**
 * A compiled ddoc function. Each call copies its arguments in as JSON, so the function can neither
 * see nor change objects of the host, and runs under `timeoutMs`.
 */
export class DdocFunction {
  private readonly context: vm.Context;
  private readonly call: vm.Script;

  constructor(ddoc: DesignDocLike, source: string, private readonly timeoutMs = 1000) {
    // Only strings cross into the context: a host function there (a `log` of ours) would hand the code
    // the host's Function constructor (`log.constructor('return process')()`), and with it the process.
    this.context = vm.createContext({ __ddocJson: JSON.stringify(ddoc), __args: '[]' }, {
      codeGeneration: { strings: true, wasm: false },
    });
    vm.runInContext(
      PRELUDE +
        'var __ddoc = JSON.parse(__ddocJson); var require = __makeRequire(__ddoc, []);' +
        'function log() {} function isArray(x) { return Array.isArray(x); } function toJSON(x) { return JSON.stringify(x); }' +
        `var __fn = (${source});` +
        "if (typeof __fn !== 'function') throw new Error('not a function');",
      this.context,
      { timeout: timeoutMs, filename: `${ddoc._id ?? 'ddoc'}` },
    );
    // `this` is the design document, as in CouchDB's query server.
    this.call = new vm.Script('__fn.apply(__ddoc, JSON.parse(__args))');
  }

  /** Calls the function; a thrown value comes back as DdocFunctionError with `.thrown` (e.g. {forbidden}). */
  run(...args: unknown[]): unknown {
    this.context.__args = JSON.stringify(args);
    try {
      return this.call.runInContext(this.context, { timeout: this.timeoutMs });
    } catch (thrown) {
      const t = thrown as { forbidden?: unknown; unauthorized?: unknown; message?: unknown };
      const msg = typeof t?.forbidden === 'string' ? t.forbidden : typeof t?.unauthorized === 'string' ? t.unauthorized : String(t?.message ?? thrown);
      throw new DdocFunctionError(msg, thrown);
    }
  }
}
