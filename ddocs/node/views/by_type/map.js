function (doc) {
  // Every anybios document by [type, name]; the agent and API list one type with it.
  if (doc.type && doc.name) emit([doc.type, doc.name], null);
}
