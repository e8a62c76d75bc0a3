'use strict';
// Benchmark peers in Node: ioredis (with and without enableAutoPipelining)
// and node-redis, on the same workloads as bench.lua and the hiredis peers,
// written as a user of each library's documented API would write them.
//
//   node bench/node/peer.js CLIENT HOST PORT WORK OPS [DEPTH]
//     CLIENT  ioredis | ioredis-auto | node-redis
//     WORK    w1 (SET then GET, one at a time), w2 (batches of DEPTH GETs),
//             w3 (DEPTH async loops sharing one connection), w4 (GET 100 KB)
//
// Prints one line "LABEL ops=N secs=S cpu=C" as the other clients do. OPS
// counts commands. Every reply is compared with the value it must be; a
// mismatch or any error exits 1. A warm-up of fixed size runs first; it is
// longer than the C and Lua clients' so that V8 has optimised the hot
// functions before the clock starts (Node is measured at its best).
//
// W2: ioredis uses its explicit pipeline (redis.pipeline(cmds).exec());
// ioredis-auto and node-redis issue the DEPTH commands in one tick and
// await them together (Promise.all), which is how both libraries document
// their automatic pipelining. W3: each of the DEPTH loops awaits its own
// GET; they share one connection, so DEPTH requests are in flight.

const NKEYS = 16;
const BIG_LEN = 102400;

function die(msg) {
  process.stderr.write(`node peer: ${msg}\n`);
  process.exit(1);
}

const [client, host, portArg, work, opsArg, depthArg] = process.argv.slice(2);
const port = Number(portArg);
const ops = Number(opsArg);
const depth = depthArg === undefined ? 1 : Number(depthArg);
if (!['ioredis', 'ioredis-auto', 'node-redis'].includes(client) || !host ||
    !Number.isInteger(port) || !Number.isInteger(ops) || ops <= 0 ||
    !Number.isInteger(depth) || depth <= 0) {
  die('usage: peer.js ioredis|ioredis-auto|node-redis HOST PORT WORK OPS [DEPTH]');
}

// The data set, byte for byte as bench/common.h defines it.
const keys = [];
const vals = [];
for (let i = 0; i < NKEYS; i++) {
  keys.push(`bench:k${i}`);
  vals.push(`value-${String(i).padStart(2, '0')}-xxxxxxx`);
}
let big = '';
{
  const b = Buffer.alloc(BIG_LEN);
  for (let j = 0; j < BIG_LEN; j++) b[j] = 33 + (j % 251) % 94;
  big = b.toString('latin1');
}

function check(got, want, what) {
  if (got !== want) {
    const len = typeof got === 'string' ? got.length : -1;
    die(`${what}: wrong reply (${typeof got}, ${len} bytes)`);
  }
}

// One interface over the two libraries: set, get, and a W2 batch.
async function connect() {
  if (client === 'node-redis') {
    const { createClient } = require('redis');
    const c = createClient({ socket: { host, port, reconnectStrategy: false } });
    c.on('error', (e) => die(`node-redis: ${e.message}`));
    await c.connect();
    return {
      set: (k, v) => c.set(k, v),
      get: (k) => c.get(k),
      batch: (ks) => Promise.all(ks.map((k) => c.get(k))),
    };
  }
  const Redis = require('ioredis');
  const r = new Redis({
    host, port, lazyConnect: true, enableAutoPipelining: client === 'ioredis-auto',
    maxRetriesPerRequest: 0, retryStrategy: () => null,
  });
  r.on('error', (e) => die(`ioredis: ${e.message}`));
  await r.connect();
  let batch;
  if (client === 'ioredis') {
    batch = async (ks, cmds) => {
      const res = await r.pipeline(cmds).exec();
      return res.map(([err, v]) => {
        if (err) die(`GET: ${err.message}`);
        return v;
      });
    };
  } else {
    batch = (ks) => Promise.all(ks.map((k) => r.get(k)));
  }
  return { set: (k, v) => r.set(k, v), get: (k) => r.get(k), batch };
}

async function w1(c, n) {
  const key = `bench:w1:${client}`;
  const iters = Math.floor(n / 2);
  for (let i = 0; i < iters; i++) {
    const v = vals[i & 15];
    check(await c.set(key, v), 'OK', 'SET');
    check(await c.get(key), v, 'GET');
  }
  return iters * 2;
}

async function w2(c, n) {
  const ks = [];
  const cmds = [];
  const want = [];
  for (let j = 0; j < depth; j++) {
    ks.push(keys[j & 15]);
    cmds.push(['get', keys[j & 15]]);
    want.push(vals[j & 15]);
  }
  const batches = Math.floor(n / depth);
  for (let b = 0; b < batches; b++) {
    const res = await c.batch(ks, cmds);
    if (res.length !== depth) die(`batch: ${res.length} replies for ${depth}`);
    for (let j = 0; j < depth; j++) check(res[j], want[j], 'GET');
  }
  return batches * depth;
}

async function w3(c, n) {
  let left = n;
  async function worker(slot) {
    const key = keys[slot & 15];
    const v = vals[slot & 15];
    while (left > 0) {
      left--;
      check(await c.get(key), v, 'GET');
    }
  }
  const loops = [];
  for (let i = 0; i < depth; i++) loops.push(worker(i));
  await Promise.all(loops);
  return n;
}

async function w4(c, n) {
  for (let i = 0; i < n; i++) check(await c.get('bench:big'), big, 'GET big');
  return n;
}

const WORK = {
  w1: [w1, 4000, () => 'W1'],
  w2: [w2, 50 * depth, () => `W2/${depth}`],
  w3: [w3, Math.max(4000, 20 * depth), () => `W3/${depth}`],
  w4: [w4, 200, () => 'W4'],
};

async function main() {
  const w = WORK[work];
  if (!w) die(`unknown workload ${work}`);
  const [run, warm, label] = w;
  const c = await connect();
  await run(c, warm);
  // process.cpuUsage(): this process's user + system CPU time, the same
  // quantity the other clients read (getrusage, clock(3)); all of Node's
  // threads count, as they would on a user's machine.
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const done = await run(c, ops);
  const t1 = process.hrtime.bigint();
  const c1 = process.cpuUsage(c0);
  const secs = Number(t1 - t0) / 1e9;
  const cpu = (c1.user + c1.system) / 1e6;
  const sys = c1.system / 1e6;
  process.stdout.write(`${label()} ops=${done} secs=${secs.toFixed(6)} cpu=${cpu.toFixed(6)} sys=${sys.toFixed(6)}\n`);
  process.exit(0);
}

main().catch((e) => die(e && e.stack ? e.stack : String(e)));
