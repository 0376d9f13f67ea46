function (doc) {
  // Observed phase of each system: [phase, name].
  if (doc.type === 'status') emit([doc.phase, doc.name], { observedRev: doc.observedRev || null, updated: doc.updated });
}
