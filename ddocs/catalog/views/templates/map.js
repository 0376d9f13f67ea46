function (doc) {
  // Templates by name, with what a listing needs.
  if (doc.type === 'template') emit(doc.name, { source: doc.source, description: doc.description || null });
}
