// A jobtask client in Node.js, built from protos/ with @grpc/grpc-js and @grpc/proto-loader:
// it watches the event stream, drives a job and a task tree through their lifecycles, and
// reads a failed call's status code and the OperationResult in its rich status details.
// Usage: JOBTASK_TOKEN=... node tests/node/client.mjs 127.0.0.1:50051
import path from "node:path";
import { fileURLToPath } from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const protos = path.resolve(here, "../../protos");
const address = process.argv[2];
const metadata = new grpc.Metadata();
metadata.set("authorization", `Bearer ${process.env.JOBTASK_TOKEN}`);

const definition = protoLoader.loadSync(
  ["jobtask/v1/jobs.proto", "jobtask/v1/tasks.proto", "jobtask/v1/events.proto"],
  { includeDirs: [protos], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
);
const v1 = grpc.loadPackageDefinition(definition).jobtask.v1;
const credentials = grpc.credentials.createInsecure();
const jobs = new v1.JobService(address, credentials);
const tasks = new v1.TaskService(address, credentials);
const events = new v1.EventService(address, credentials);

const call = (client, method, request) =>
  new Promise((resolve, reject) =>
    client[method](request, metadata, (error, response) => (error ? reject(error) : resolve(response))),
  );

// The rich status details: google.rpc.Status (shipped in protos/) wrapping a
// jobtask.v1.OperationResult.
const root = new protobuf.Root();
root.resolvePath = (_origin, target) => path.join(protos, target);
root.loadSync(["jobtask/v1/common.proto", "google/rpc/status.proto"]);
const Status = root.lookupType("google.rpc.Status");
const OperationResult = root.lookupType("jobtask.v1.OperationResult");

function operationResult(error) {
  const [raw] = error.metadata.get("grpc-status-details-bin");
  const status = Status.decode(raw);
  const detail = status.details.find((any) => any.type_url.endsWith("jobtask.v1.OperationResult"));
  return OperationResult.toObject(OperationResult.decode(detail.value), { enums: String });
}

const seen = [];
const stream = events.Subscribe({ after_sequence: 0 }, metadata);
const streamEnded = new Promise((resolve) => {
  stream.on("data", (response) => {
    if (response.event) seen.push(response.event.type);
  });
  stream.on("error", resolve);
  stream.on("end", resolve);
});

const { job } = await call(jobs, "CreateJob", {
  job: { name: "from node", kind: "node.build", payload: { fields: { lang: { stringValue: "js" } } } },
});
await call(jobs, "StartJob", { id: job.id, etag: job.etag });
const done = await call(jobs, "CompleteJob", { id: job.id, result: { message: "built" } });

const { task: rootTask } = await call(tasks, "CreateTask", { task: { title: "ship", priority: "TASK_PRIORITY_HIGH" } });
const children = [];
for (const title of ["test", "release notes"]) {
  const { task } = await call(tasks, "CreateSubtask", { parent_id: rootTask.id, task: { title } });
  children.push(task);
}
await call(tasks, "AssignTask", { id: children[0].id, assignee: "node-bot" });
let refusal;
try {
  await call(tasks, "CompleteTask", { id: rootTask.id });
} catch (error) {
  refusal = { code: grpc.status[error.code], result: operationResult(error) };
}
for (const child of children) await call(tasks, "CompleteTask", { id: child.id });
await call(tasks, "CompleteTask", { id: rootTask.id });

let missing;
try {
  await call(jobs, "GetJob", { id: "01a22205-df42-71d0-9cb9-aa147483dbae" });
} catch (error) {
  missing = { code: grpc.status[error.code], result: operationResult(error) };
}

const expected = 15;
const deadline = Date.now() + 15000;
while (seen.length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
stream.cancel();
await streamEnded;

console.log(JSON.stringify({ job_status: done.job.status, events: seen, refusal, missing }));
for (const client of [jobs, tasks, events]) client.close();
