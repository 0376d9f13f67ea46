// CouchDB's name for a node that is not part of a distributed Erlang cluster: what the embedded server is.
export const NODE_NAME = 'nonode@nohost';
