// `anybios stop NAME --node N` (through the server); `stop --local` is bin/commands/stop.ts. See bin/lib/system-action.ts.
import { systemAction } from '../lib/system-action.ts';

export const command = systemAction('stop');
