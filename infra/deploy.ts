/**
 * ComposeDeployment: a dynamic resource that uploads a compose bundle over SSH and runs
 * `docker compose up -d --wait`; it redeploys when the bundle hash (i.e. the plan), the host or
 * the HF token changes, and `pulumi refresh` reads what runs on the host (deploy-provider.ts
 * `read`). There is no @pulumi/command here, so this is built on ssh2.
 *
 * Pulumi serialises a dynamic provider's methods into the resource's state. The methods below
 * capture nothing but a module URL and import the real logic (deploy-provider.ts) at run time,
 * which keeps serialisation trivial. The provider process must be able to load TypeScript:
 * `inferbench run`'s workspace starts it through its own shim with tsx loaded (infra/automation.ts);
 * a hand-run `pulumi up` needs NODE_OPTIONS="--import tsx".
 */
import * as pulumi from "@pulumi/pulumi";
import type { DeploymentInputs } from "./deploy-provider.ts";

const LOGIC_URL = new URL("./deploy-provider.ts", import.meta.url).href;

/** Exported so a test can serialise it the way the engine does. */
export const composeDeploymentProvider: pulumi.dynamic.ResourceProvider = {
  async diff(_id: string, olds: DeploymentInputs, news: DeploymentInputs) {
    const m = await import(LOGIC_URL);
    const { changes, replaces, deleteBeforeReplace } = m.diffDeployment(olds, news);
    return { changes, replaces, deleteBeforeReplace };
  },
  async create(inputs: DeploymentInputs) {
    const m = await import(LOGIC_URL);
    return m.create(inputs);
  },
  async update(id: string, olds: DeploymentInputs, news: DeploymentInputs) {
    const m = await import(LOGIC_URL);
    return m.update(id, olds, news);
  },
  async read(id: string, props: DeploymentInputs) {
    const m = await import(LOGIC_URL);
    return m.read(id, props);
  },
  async delete(id: string, props: DeploymentInputs) {
    const m = await import(LOGIC_URL);
    await m.remove(id, props);
  },
};

export type ComposeDeploymentArgs = {
  [K in keyof DeploymentInputs]: pulumi.Input<DeploymentInputs[K]>;
};

export class ComposeDeployment extends pulumi.dynamic.Resource {
  declare readonly bundleHash: pulumi.Output<string>;
  declare readonly projectName: pulumi.Output<string>;
  constructor(name: string, args: ComposeDeploymentArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      composeDeploymentProvider,
      name,
      { ...args, privateKey: pulumi.secret(args.privateKey), hfToken: pulumi.secret(args.hfToken) },
      { ...opts, additionalSecretOutputs: ["privateKey", "hfToken"] },
      "inferbench",
      "ComposeDeployment",
    );
  }
}
