import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { bundleHash, writePlanBundle } from "../../compose/bundle.ts";
import {
  COMPOSE_FILE,
  DEFAULT_ENGINE_SIM_IMAGE,
  HF_ENV_FILE,
  ROUTER_CONFIG_FILE,
  renderCompose,
  vllmCommand,
} from "../../compose/render.ts";
import { fixturePath, fixturePlan } from "./fixture-plan.ts";
import { matchSnapshot } from "./snapshot.ts";

const schema = JSON.parse(await readFile(fixturePath("schemas/compose-spec.json"), "utf8"));
// draft-07; compose's custom formats (duration, ...) are not standard: format checks off.
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
// Its $schema is the https spelling of draft-07, which Ajv does not know by that id: drop it.
const { $schema: _draft, ...schemaBody } = schema;
const validate = ajv.compile(schemaBody);

type Doc = { services: Record<string, Record<string, unknown>> };
function assertValid(yamlText: string): Doc {
  const doc: unknown = parse(yamlText);
  assert.ok(validate(doc), JSON.stringify(validate.errors, null, 2));
  return doc as Doc;
}

const SIM = `ghcr.io/inferbench/engine-sim@sha256:${"d".repeat(64)}`;

/** Runner options as a target passes them. */
const RUNNER = {
  experimentPlan: '{"kind":"inferbench-experiment-plan"}\n',
  runId: "20261201-120000-abcd",
  runnerUser: "1000:1000",
};

describe("compose renderer", () => {
  for (const mode of ["baseline", "managed"] as const) {
    it(`${mode}: matches snapshot and the compose-spec schema`, () => {
      const out = renderCompose(fixturePlan(mode), RUNNER);
      matchSnapshot(import.meta.url, `${mode}.compose.yaml`, out.files[COMPOSE_FILE]!);
      matchSnapshot(import.meta.url, `${mode}.router.json`, out.files[ROUTER_CONFIG_FILE]!);
      assertValid(out.files[COMPOSE_FILE]!);
    });
    it(`${mode} rehearsal on engine-sim: snapshot, schema, no GPUs`, () => {
      const out = renderCompose(fixturePlan(mode), {
        ...RUNNER,
        rehearsal: { engineSimImage: SIM },
      });
      matchSnapshot(import.meta.url, `${mode}.rehearsal.compose.yaml`, out.files[COMPOSE_FILE]!);
      const doc = assertValid(out.files[COMPOSE_FILE]!);
      for (const [name, svc] of Object.entries<Record<string, unknown>>(doc.services)) {
        assert.equal(svc.deploy, undefined, `${name} reserves a GPU in rehearsal`);
        if (name !== "router" && name !== "runner") assert.equal(svc.image, SIM);
      }
      assert.match(out.files[COMPOSE_FILE]!, /emulated numbers/);
      assert.equal(JSON.parse(out.files["plan.json"]!).emulated, true);
    });
  }

  it("the managed default image is built from the bundle: the baseline's digest + kvcached", () => {
    const base = fixturePlan("baseline").engines[0]!.image;
    const out = renderCompose(fixturePlan("managed"), RUNNER);
    const doc = assertValid(out.files[COMPOSE_FILE]!);
    const built = Object.values(doc.services).filter((s) => s.build);
    assert.equal(built.length, fixturePlan("managed").engines.length, "every KVCached engine");
    for (const s of built) {
      assert.deepEqual(s.build, {
        context: "./images/vllm-kvcached",
        args: { BASE_IMAGE: base, KVCACHED_VERSION: "0.1.6" },
      });
      assert.match(String(s.image), /^inferbench\/vllm-kvcached:0\.1\.6-a{12}$/);
    }
    const dockerfile = out.files["images/vllm-kvcached/Dockerfile"]!;
    assert.match(dockerfile, /^FROM \$\{BASE_IMAGE\}$/m);
    // Nothing to build on the baseline arm, nor in a rehearsal (engine-sim replaces vLLM).
    assert.equal(
      renderCompose(fixturePlan("baseline"), RUNNER).files["images/vllm-kvcached/Dockerfile"],
      undefined,
    );
    const sim = renderCompose(fixturePlan("managed"), {
      ...RUNNER,
      rehearsal: { engineSimImage: SIM },
    });
    assert.equal(sim.files["images/vllm-kvcached/Dockerfile"], undefined);
    // A base image given by tag is as unpinned as the image built from it.
    const tagged = fixturePlan("managed");
    const t = {
      ...tagged,
      engines: tagged.engines.map((e) => ({
        ...e,
        build: { ...e.build!, from: "vllm/vllm-openai:v0.14.0" },
      })),
    };
    assert.throws(
      () => renderCompose(t, RUNNER),
      /image "vllm\/vllm-openai:v0.14.0" is not pinned by digest/,
    );
  });

  it("pins each engine to its GPU ids and binds every port to loopback", () => {
    const plan = fixturePlan("managed");
    const { project } = renderCompose(plan);
    for (const e of plan.engines) {
      const svc = project.services[e.name]!;
      assert.deepEqual(
        svc.deploy?.resources.reservations.devices[0]?.device_ids,
        e.gpus.map(String),
      );
      assert.equal(svc.image, e.image);
    }
    for (const svc of Object.values(project.services)) {
      for (const p of svc.ports ?? []) assert.match(p, /^127\.0\.0\.1:\d+:\d+$/);
    }
  });

  it("managed engines get KVCached env and ipc: host; baseline gets neither", () => {
    const managed = renderCompose(fixturePlan("managed")).project.services["llama-3-1-8b-0"]!;
    assert.equal(managed.ipc, "host");
    assert.equal(managed.environment?.ENABLE_KVCACHED, "true");
    assert.equal(managed.environment?.KVCACHED_IPC_NAME, "kvcached-llama-3-1-8b-0");
    const baseline = renderCompose(fixturePlan("baseline")).project.services["llama-3-1-8b-0"]!;
    assert.equal(baseline.ipc, undefined);
    assert.equal(baseline.environment?.ENABLE_KVCACHED, undefined);
  });

  it("router waits for every engine to be healthy; engines share the HF cache volume", () => {
    const plan = fixturePlan("baseline");
    const { project } = renderCompose(plan);
    const deps = project.services.router!.depends_on!;
    assert.deepEqual(Object.keys(deps).sort(), plan.engines.map((e) => e.name).sort());
    for (const d of Object.values(deps)) assert.equal(d.condition, "service_healthy");
    for (const e of plan.engines) {
      const svc = project.services[e.name]!;
      assert.ok(svc.volumes?.includes("hf-cache:/root/.cache/huggingface"));
      assert.ok(Number.parseInt(svc.healthcheck!.start_period, 10) >= 600);
    }
    assert.equal(project.volumes["hf-cache"]?.name, "inferbench-hf-cache");
  });

  it("the HF token only comes through env_file, never inline", () => {
    const plan = fixturePlan("managed");
    plan.engines[0]!.env.SOME = "x";
    const { project, files } = renderCompose(plan);
    for (const svc of Object.values(project.services)) {
      assert.ok(!Object.keys(svc.environment ?? {}).some((k) => /HF_TOKEN|HUGGING_FACE/.test(k)));
    }
    assert.deepEqual(project.services["qwen2-5-7b-1"]!.env_file, [
      { path: `./${HF_ENV_FILE}`, required: true },
    ]);
    assert.ok(!(HF_ENV_FILE in files));
  });

  it("runner: `inferbench runner` on the bound plan, as the SSH user, results per run id", () => {
    const plan = fixturePlan("managed");
    const out = renderCompose(plan, RUNNER);
    const runner = out.project.services.runner!;
    assert.deepEqual(runner.command, [
      "runner",
      "--plan",
      "/inferbench/experiment.json",
      "--arm",
      "managed",
      "--out",
      `/results/${RUNNER.runId}`,
      "--resume",
    ]);
    assert.equal(runner.user, "1000:1000");
    assert.equal(runner.entrypoint, undefined, "the kit image's entry point is inferbench");
    assert.ok(runner.volumes!.includes("./experiment.json:/inferbench/experiment.json:ro"));
    assert.equal(out.files["experiment.json"], RUNNER.experimentPlan);
    assert.ok(!("run-benchmark.sh" in out.files), "no flag re-encoding of the plan");
    // Without a plan there is no runner to start (servers only, e.g. a hand `pulumi up`).
    assert.equal(renderCompose(plan).project.services.runner, undefined);
    const trace = fixturePlan("baseline");
    trace.runner.workload.dataset = { kind: "mooncake", path: "x.jsonl", timeScale: 1 };
    assert.throws(() => renderCompose(trace), /workload\.dataset\.path: x\.jsonl must travel/);
  });

  it("refuses images that are not digest-pinned unless allowed", () => {
    const plan = fixturePlan("baseline");
    plan.engines[2]!.image = "vllm/vllm-openai:latest";
    assert.throws(() => renderCompose(plan), /not pinned by digest/);
    assert.doesNotThrow(() => renderCompose(plan, { allowUnpinnedImages: true }));
  });

  it("an emulated plan renders the rehearsal by default", () => {
    const plan = { ...fixturePlan("managed"), emulated: true };
    const { project } = renderCompose(plan);
    assert.equal(project.services["qwen2-5-7b-0"]!.image, DEFAULT_ENGINE_SIM_IMAGE);
    assert.equal(project.services["qwen2-5-7b-0"]!.deploy, undefined);
  });

  for (const stack of ["gcp-baseline", "gcp-managed"]) {
    it(`renders the shipped ${stack} stack through the lead's plan()`, async () => {
      const { planStack } = await import("../../targets/plan-stack.ts");
      const pinned = `ghcr.io/ovg-project/kvcached-vllm@sha256:${"e".repeat(64)}`;
      const { plan } = planStack(stack, [`engine.images.managed=${pinned}`]);
      const out = renderCompose(plan);
      assertValid(out.files[COMPOSE_FILE]!);
      const gpus = plan.engines.flatMap((e) => e.gpus).sort();
      assert.deepEqual(gpus, [0, 1, 2, 3, 4, 5]);
    });
  }

  it("vllm command fills in flags the plan args leave out, never duplicates", () => {
    const e = fixturePlan("baseline").engines[4]!;
    const cmd = vllmCommand(e);
    assert.equal(cmd[0], e.hfPath);
    for (const f of ["--port", "--served-model-name", "--max-model-len", "--quantization"]) {
      assert.equal(cmd.filter((a) => a === f).length, 1, f);
    }
    assert.ok(cmd.includes("--enable-prefix-caching"));
    const withPort = vllmCommand({ ...e, args: ["--port=9999"] });
    assert.ok(!withPort.includes("--port"));
    assert.ok(vllmCommand({ ...e, gpus: [0, 1] }).includes("--tensor-parallel-size"));
  });

  it("bundle hash changes with the plan; writePlanBundle writes the project", async () => {
    const a = renderCompose(fixturePlan("baseline")).files;
    const b = renderCompose(fixturePlan("managed")).files;
    assert.equal(bundleHash(a), bundleHash({ ...a }));
    assert.notEqual(bundleHash(a), bundleHash(b));
    const dir = await mkdtemp(join(tmpdir(), "ib-compose-"));
    try {
      const written = await writePlanBundle(dir, fixturePlan("managed"));
      // compose.yaml, router.json, plan.json and the managed image's Dockerfile: no runner
      // without an experiment plan.
      assert.equal(written.length, 4);
      assert.match(
        await readFile(join(dir, "images/vllm-kvcached/Dockerfile"), "utf8"),
        /kvcached==/,
      );
      assertValid(await readFile(join(dir, COMPOSE_FILE), "utf8"));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
