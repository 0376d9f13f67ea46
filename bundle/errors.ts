// The error catalog of bundles. Each code names one way a bundle is refused; the message says which
// byte, record or document and why. Every refusal happens before anything is written, except
// BUNDLE_CHANGED (the file changed on disk between the verifying pass and the writes).
export type BundleCode =
  | 'BUNDLE_NOT_A_BUNDLE'   // the file does not start with the magic line
  | 'BUNDLE_VERSION'        // a format version this anybios does not read
  | 'BUNDLE_TRUNCATED'      // the file ends early (inside a record, before the end record or the MAC)
  | 'BUNDLE_MALFORMED'      // a record is not what the format says (at byte N)
  | 'BUNDLE_TOO_LARGE'      // a record, the documents or a blob exceed the limits
  | 'BUNDLE_MAC_MISMATCH'   // altered, damaged, or made with another credential
  | 'BUNDLE_WRONG_NODE'     // made for another node
  | 'BUNDLE_WRONG_ORIGIN'   // a server bundle where a node bundle is expected, or the reverse
  | 'BUNDLE_KEY_UNKNOWN'    // the key cannot be made (no such node user, no key parameters known yet)
  | 'BUNDLE_REFUSED'        // a document the target's rules refuse (as validate_doc_update does for replication)
  | 'BUNDLE_MISSING_ATTACHMENT' // an attachment neither in the bundle nor at the target
  | 'BUNDLE_CHECKPOINT_INVALID' // --since is not a checkpoint of this node and direction
  | 'BUNDLE_SOURCE_CHANGED' // export: an attachment is not what its document states
  | 'BUNDLE_CHANGED'        // import: the file changed between the verifying pass and the writes
  | 'BUNDLE_SOURCE_UNREACHABLE'; // export/import: the server's CouchDB cannot be reached or refuses

export class BundleError extends Error {
  constructor(readonly code: BundleCode, message: string, readonly details?: unknown) {
    super(message);
  }
}
