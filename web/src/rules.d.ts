declare module 'anybios:rules' {
  export function errorsOf(doc: unknown): { path: string; message: string }[];
}
