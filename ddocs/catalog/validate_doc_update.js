function (newDoc, oldDoc, userCtx, secObj) {
  // Catalog rules: admins and operators write templates; every write is checked against its schema.
  require('lib/rules').validate('catalog', newDoc, oldDoc, userCtx, secObj);
}
