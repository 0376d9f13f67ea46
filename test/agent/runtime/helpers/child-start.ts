// Run in a separate node process by the recovery tests: start one system, then exit (or SIGKILL
// ourselves at a fault point), so that a new runtime must adopt or recover what we left behind.
import { createRuntime, type FaultPoint } from '../../../../agent/runtime/index.ts';
import { docErrors } from '../../../../ddocs/validate.ts';

const args = JSON.parse(process.argv[2]!) as {
  dataDir: string;
  templateRoots: string[];
  spec: Parameters<Awaited<ReturnType<typeof createRuntime>>['start']>[0];
  template: Parameters<Awaited<ReturnType<typeof createRuntime>>['start']>[1];
  crashAt?: FaultPoint;
};
const rt = await createRuntime({
  checkDoc: docErrors,
  dataDir: args.dataDir,
  templateRoots: args.templateRoots,
  faultPoint: (p) => {
    if (p === args.crashAt) process.kill(process.pid, 'SIGKILL');
  },
});
const o = await rt.start(args.spec, args.template);
process.stdout.write(JSON.stringify(o) + '\n');
process.exit(0);
