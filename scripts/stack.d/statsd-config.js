/* StatsD config, evaluated by statsd as a JS expression (also mounted by docker-compose.yml).
   No backend: metrics stay in memory and are read through the admin port. Values reset at
   each flush, so the flush interval is an hour. */
{
  address: process.env.STATSD_BIND_ADDRESS || "127.0.0.1",
  port: parseInt(process.env.STATSD_PORT || "8125", 10),
  mgmt_address: process.env.STATSD_BIND_ADDRESS || "127.0.0.1",
  mgmt_port: parseInt(process.env.STATSD_ADMIN_PORT || "8126", 10),
  flushInterval: 3600000,
  backends: [],
  automaticConfigReload: false
}
