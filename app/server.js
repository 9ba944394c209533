// The lab's Hello World server, made fit for Kubernetes: health endpoints for the
// probes and a shutdown that drains in-flight requests before the pod goes away.
'use strict';

const http = require('http');

const PORT = Number(process.env.PORT || 8080);
const MESSAGE = process.env.MESSAGE || 'Hello World';
// After SIGTERM the endpoint controller needs a moment to take this pod out of the
// Service; until then new requests still arrive, so keep serving them for a while.
const DRAIN_SECONDS = Number(process.env.SHUTDOWN_DRAIN_SECONDS || 5);

let shuttingDown = false;

const server = http.createServer((req, res) => {
  if (req.url === '/livez') {
    // Liveness stays healthy while draining: a restart now would cut the requests still in flight.
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok\n');
    return;
  }
  if (req.url === '/healthz') {
    // Readiness fails while draining so that no new traffic is routed here.
    res.writeHead(shuttingDown ? 503 : 200, { 'Content-Type': 'text/plain' });
    res.end(shuttingDown ? 'draining\n' : 'ok\n');
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end(`${MESSAGE}\n`);
});

// Kept-alive connections would hold server.close() open until the grace period ends.
server.keepAliveTimeout = 5000;

function shutdown(signal) {
  if (shuttingDown) return;
  shuttingDown = true;
  console.log(`${signal} received, draining for ${DRAIN_SECONDS}s`);
  setTimeout(() => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  }, DRAIN_SECONDS * 1000);
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

server.listen(PORT, () => console.log(`listening on ${PORT}`));
