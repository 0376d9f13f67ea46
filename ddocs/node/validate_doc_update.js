function (newDoc, oldDoc, userCtx, secObj) {
  // Node database rules: specs by admins, operators and the node's user; node:/status: by the node's agent only.
  require('lib/rules').validate('node', newDoc, oldDoc, userCtx, secObj);
}
