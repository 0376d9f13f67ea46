// Stands in for `level` inside the CLI build's PouchDB (bin/anybios.mjs): PouchDB only calls it to
// migrate a database from the layout of PouchDB before 2.2 (a `<name>.uuid` file next to it), yet
// requiring it at start loads a second LevelDB native library. Here it is loaded on first call.
'use strict';
module.exports = function level() {
  return require('level').apply(this, arguments);
};
