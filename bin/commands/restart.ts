// `anybios restart`: see bin/lib/system-action.ts.
import { systemAction } from '../lib/system-action.ts';

export const command = systemAction('restart');
