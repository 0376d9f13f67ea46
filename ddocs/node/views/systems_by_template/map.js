function (doc) {
  // Which systems of this node use a template (to find who must be reconciled after a template changes).
  if (doc.type === 'system') emit(doc.template, { kind: doc.kind, state: doc.state });
}
