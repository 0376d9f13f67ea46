function (doc) {
  // Documents with conflicting revisions, surfaced for deliberate resolution.
  if (doc._conflicts && doc._conflicts.length) emit(doc._id, doc._conflicts);
}
