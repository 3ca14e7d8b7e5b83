//! `cic`: the one binary. `cic server`, `cic edge`, `cic lab`, and the resource commands.

mod audit;
mod bench;
mod bench_flood;
mod client;
mod commands;
mod config;
mod config_file;
mod credentials;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::client::Refused;

#[derive(Parser)]
#[command(
    name = "cic",
    version,
    about = "cic — an open-source Cloud Interconnect"
)]
struct Cli {
    /// API server URL for the resource commands [default: the profile's, else
    /// http://127.0.0.1:8080].
    #[arg(long, global = true, env = "CIC_SERVER")]
    server: Option<String>,
    /// Bearer token for the resource commands [default: the profile's].
    #[arg(long, global = true, env = "CIC_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate (PEM) the server's certificate must chain to [default: the
    /// profile's, else the system's CAs].
    #[arg(long, global = true, env = "CIC_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
    /// Allow plain HTTP to (for `cic server`: on) an address that is not loopback: tokens
    /// and secrets then cross the network in clear.
    #[arg(long, global = true)]
    insecure_http: bool,
    /// Log levels of the daemons, per module (`info`, `info,cic_bgp=debug`); SIGHUP sets
    /// the server's again from its config file.
    #[arg(long, global = true, env = "RUST_LOG")]
    log_level: Option<String>,
    /// Logs of the daemons (server, edge): text, or json (one object a line).
    #[arg(long, global = true, env = "CIC_LOG_FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Profile of `cic config` to take server, token, folder and format from.
    #[arg(long, global = true, env = "CIC_PROFILE")]
    profile: Option<String>,
    /// Output: table (lists as tables, resources as YAML), json or yaml [default: the
    /// profile's, else table].
    #[arg(long, global = true, value_parser = commands::FORMATS)]
    format: Option<String>,
    /// Same as --format json.
    #[arg(long, global = true, hide = true)]
    json: bool,
    /// Do not wait for mutations to be applied; print the operation at once.
    #[arg(long = "async", global = true)]
    no_wait: bool,
    /// No progress while waiting, and no summary line when a mutation is done (the exit
    /// status says it; errors are still printed; --format json|yaml still prints).
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    /// How long to wait for a mutation, in seconds.
    #[arg(long, global = true, default_value_t = 120)]
    timeout: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the control plane (API, store, operations, edge sync).
    Server(ServerCmd),
    /// Run the agent of an edge router.
    Edge(EdgeArgs),
    /// The lab: the whole picture in network namespaces on this machine.
    #[command(subcommand)]
    Lab(LabCmd),
    /// Points of presence (operator).
    #[command(subcommand, name = "pop")]
    Pop(commands::PopCmd),
    /// Edge routers (operator).
    #[command(subcommand, name = "edge-router")]
    EdgeRouter(commands::EdgeRouterCmd),
    /// Trunk connections.
    #[command(subcommand, name = "trunk-connection", visible_alias = "trunk")]
    Trunk(commands::TrunkCmd),
    /// Private connections.
    #[command(subcommand, name = "private-connection", visible_alias = "connection")]
    Connection(commands::ConnectionCmd),
    /// Public connections (the operator creates and deletes them).
    #[command(subcommand, name = "public-connection")]
    PublicConnection(commands::PublicConnectionCmd),
    /// Partners (operator catalog; everyone reads it).
    #[command(subcommand)]
    Partner(commands::PartnerCmd),
    /// Cloud services reachable over public connections (operator catalog).
    #[command(subcommand, name = "cloud-service")]
    CloudService(commands::CloudServiceCmd),
    /// Routing instances (Cloud Router).
    #[command(subcommand, name = "routing-instance")]
    RoutingInstance(commands::RoutingInstanceCmd),
    /// Long-running operations.
    #[command(subcommand)]
    Operation(commands::OperationCmd),
    /// Folders and who may do what in them.
    #[command(subcommand)]
    Folder(commands::FolderCmd),
    /// API keys of subjects (operator).
    #[command(subcommand, name = "api-key")]
    ApiKey(commands::ApiKeyCmd),
    /// The audit trail: who changed what, and who was refused.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// CLI profiles: server, token, folder and output format.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Certificates for a first deployment or the lab.
    #[command(subcommand)]
    Pki(PkiCmd),
    /// On an edge host (as root): what the kernel gives the edge and what it does without
    /// each missing part; the sysctls it sets; the clock; the server, if --server is given.
    Doctor,
    /// The shell's completion script: `source <(cic completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Man pages of cic and every subcommand, written to a directory.
    Man {
        #[arg(long)]
        dir: std::path::PathBuf,
    },
    /// Benchmarks (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCmd),
    /// The BGP speaker on its own: a route server or collector configured from a file.
    #[command(subcommand)]
    Bgp(BgpCmd),
}

#[derive(Subcommand)]
enum BgpCmd {
    /// Run the speaker until SIGINT or SIGTERM (then every session ends with a Cease);
    /// SIGHUP reads the config again and applies what changed.
    Run {
        /// The speaker's TOML file (see crates/speaker/src/config.rs or the README).
        #[arg(long)]
        config: std::path::PathBuf,
        /// The control socket `cic bgp show` reads.
        #[arg(long, default_value = "/run/cic-bgp.sock")]
        socket: std::path::PathBuf,
        /// Check the config and exit.
        #[arg(long)]
        check: bool,
    },
    /// Show the state of a running speaker.
    #[command(subcommand)]
    Show(BgpShow),
}

#[derive(Subcommand)]
enum BgpShow {
    /// Neighbors: state, uptime, prefixes received / accepted / advertised.
    Summary {
        #[arg(long, default_value = "/run/cic-bgp.sock")]
        socket: std::path::PathBuf,
    },
    /// The best route of every prefix in the Loc-RIB.
    Routes {
        #[arg(long, default_value = "/run/cic-bgp.sock")]
        socket: std::path::PathBuf,
        /// Print only the number of prefixes.
        #[arg(long, conflicts_with = "json")]
        count: bool,
        /// A JSON array: prefix, nextHop, asPath, peer, origin, … of each route.
        #[arg(long)]
        json: bool,
    },
    /// One neighbor's routes (a looking glass): what it sent, each refused one with why;
    /// what was accepted of it; or what it is sent.
    Neighbor {
        /// The neighbor's address.
        address: std::net::IpAddr,
        #[arg(value_enum, default_value = "received")]
        which: NeighborRoutes,
        #[arg(long, default_value = "/run/cic-bgp.sock")]
        socket: std::path::PathBuf,
        /// A JSON array, as `routes --json`, with `refused` on refused routes.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum NeighborRoutes {
    Received,
    Accepted,
    Advertised,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// BGP: the same pre-encoded feed into cic's speaker and BIRD (FRR, GoBGP) in turn.
    /// ingest: seconds from Established to the last prefix in the Loc-RIB, and peak RSS;
    /// monitor: the same feed, timed until a peer the speaker exports to holds all of it;
    /// export: the table loaded first, seconds until a new peer holds all of it.
    Bgp {
        /// ingest, monitor or export.
        #[arg(long, default_value = "ingest")]
        mode: String,
        #[arg(long, default_value_t = 1_000_000)]
        prefixes: usize,
        /// Sessions the prefixes are spread over (1–250).
        #[arg(long, default_value_t = 1)]
        peers: usize,
        /// Prefixes per UPDATE (each run has its own AS path).
        #[arg(long, default_value_t = 16)]
        per_update: usize,
        /// Distinct attribute sets, scattered over the table as in a real one (0: runs
        /// of --per-update prefixes over 1,000 AS paths).
        #[arg(long, default_value_t = 0)]
        sets: usize,
        /// Speakers to run, in order: cic, bird, frr, gobgp.
        #[arg(long, value_delimiter = ',', default_value = "cic,bird")]
        speakers: Vec<String>,
    },
    /// What one tenant's flood costs another tenant and an edge, with the rate limit and
    /// without (against `cic server` on loopback).
    Flood {
        /// Seconds each row is measured.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Tenant A's concurrent flooders.
        #[arg(long, default_value_t = 16)]
        flooders: usize,
    },
    /// API latency with many private connections stored, against `cic server` running as
    /// a separate process on loopback.
    Api {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// sqlite://PATH or postgres://… of an empty database [default: a temporary SQLite file].
        #[arg(long)]
        database: Option<String>,
        #[arg(long, default_value_t = 2_000)]
        gets: usize,
        /// Full listings (in pages of 1000) to time.
        #[arg(long, default_value_t = 5)]
        list_rounds: usize,
    },
    /// Routes into a namespace (root): cic's netlink batches against cic a route at a
    /// time and against iproute2's `ip -batch`, the same routes for each, installed and
    /// removed.
    Routes {
        /// IPv4 /24s to install (every third one over two next hops), 1–65536.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=65536))]
        routes: u32,
        /// Rounds; each runs every contender once, in a fresh namespace.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
        rounds: u32,
    },
    /// Provisioning latency in the lab (root): create + attach a private connection →
    /// BGP Established → first ping across.
    Provision {
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
    /// Many private connections on one edge, in the lab (root): time from the API calls
    /// to every session Established, the edge's memory, a no-op reconcile.
    Scale {
        /// Private connections to add (1–3000), each with 10 prefixes and BFD.
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Leave the lab up afterwards (`cic lab down` removes it).
        #[arg(long)]
        keep: bool,
        /// Measure bring-up, propagation and the cold start only, not the edge with
        /// everything up (a no-op apply, the minute's full reconcile, 20 s of scrapes).
        #[arg(long)]
        bring_up_only: bool,
        /// BFD timers of every connection and of the customer's router: this interval
        /// (ms) × 3, from the operator's minimum (default: the operator's 300 ms).
        #[arg(long, value_parser = clap::value_parser!(u32).range(10..=10000))]
        bfd_ms: Option<u32>,
        /// With every session up, watch this many seconds for BFD Down events (none
        /// should come: nothing fails) while the metrics are scraped every second.
        #[arg(long, default_value_t = 0)]
        bfd_watch_secs: u64,
        /// API calls in flight at once, each waited for to its operation's end.
        #[arg(long, default_value_t = cic_lab::scale::IN_FLIGHT as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
        in_flight: u16,
        /// How often the edge reports, in seconds: the lab's 1 unless told (`cic edge`'s
        /// own default is 5).
        #[arg(long, default_value_t = cic_lab::LAB_REPORT_EVERY, value_parser = clap::value_parser!(u64).range(1..=60))]
        report_every: u64,
    },
}

#[derive(Subcommand)]
enum PkiCmd {
    /// Make a CA (ca.crt, ca.key) and a server certificate it signs (server.crt,
    /// server.key) in a directory: the files `cic server --tls-cert --tls-key --client-ca
    /// --client-ca-key` and clients' `--ca-cert` take.
    Init {
        #[arg(long)]
        dir: std::path::PathBuf,
        /// The server's DNS names and IP addresses (repeat).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// Days the certificates are valid.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(i64).range(1..=3650))]
        days: i64,
        /// Replace a CA already in the directory.
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct ServerCmd {
    #[command(subcommand)]
    sub: Option<ServerSub>,
    #[command(flatten)]
    args: ServerArgs,
}

#[derive(Subcommand)]
enum ServerSub {
    /// Seal every stored secret under a new key (servers running meanwhile should have
    /// both: --secrets-key-file NEW --old-secrets-key-file OLD).
    RotateSecretsKey {
        #[arg(long, default_value = "sqlite://./cic.db")]
        database: String,
        /// The key the secrets are sealed with now.
        #[arg(long)]
        secrets_key_file: std::path::PathBuf,
        /// The key to seal them with (made, mode 0600, if the file does not exist).
        #[arg(long)]
        new_secrets_key_file: std::path::PathBuf,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// A TOML file of these flags (keys: the long names, `tls-cert = "…"`); flags and
    /// the environment win over it.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Check the flags and the files they name (TLS, CA, secrets key), say so, and exit.
    #[arg(long)]
    check_config: bool,
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The server's certificate chain (PEM): serve HTTPS (TLS 1.2 and 1.3). Read again
    /// on SIGHUP, with the key and the client CA.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// CA certificate (PEM) of edges' client certificates: edges authenticate by mutual
    /// TLS, their certificate naming their edge (URI SAN spiffe://cic/edge/ID).
    #[arg(long, requires = "tls_cert")]
    client_ca: Option<std::path::PathBuf>,
    /// The private key of --client-ca: the server then issues edges' certificates
    /// (`cic edge-router issue-certificate`, `rotate-credentials`).
    #[arg(long, requires = "client_ca")]
    client_ca_key: Option<std::path::PathBuf>,
    /// With --client-ca: accept edge tokens too (edges moving to certificates).
    #[arg(long, requires = "client_ca")]
    allow_edge_tokens: bool,
    /// The key that seals secrets (TCP-MD5 keys) in the database: 64 hex digits, mode
    /// 0600; made if missing [default: DATABASE_FILE.secrets-key beside a SQLite file;
    /// required with PostgreSQL, the same file on every server].
    #[arg(long, env = "CIC_SECRETS_KEY_FILE")]
    secrets_key_file: Option<std::path::PathBuf>,
    /// A key being replaced: secrets sealed with it are still read (and sealed again
    /// with --secrets-key-file).
    #[arg(long)]
    old_secrets_key_file: Option<std::path::PathBuf>,
    /// Requests per second one credential (a token, an edge's certificate, an address)
    /// may make, sustained; more get 429 with Retry-After. 0: no limit.
    #[arg(long, default_value_t = 100.0)]
    rate_limit: f64,
    /// Requests one credential may make at once after being idle.
    #[arg(long, default_value_t = 400.0)]
    rate_burst: f64,
    /// Long-polls (waitSeconds) one credential may hold open at once; 0: no limit.
    #[arg(long, default_value_t = 32)]
    max_long_polls: usize,
    /// Days audit events are kept.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..=3650))]
    audit_retention_days: u64,
    /// Connections open at once, from everyone.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers (and finish a TLS handshake).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    header_timeout_secs: u64,
    /// sqlite://PATH (created on first start) or postgres://…
    #[arg(long, default_value = "sqlite://./cic.db")]
    database: String,
    /// The cloud's ASN, local AS of every edge session.
    #[arg(long, default_value_t = 200_350)]
    cloud_asn: u32,
    /// Prefixes accepted per private connection.
    #[arg(long, default_value_t = 500)]
    max_prefixes: u32,
    /// What exceeding it does: teardown (Cease, then idle), discard or warn.
    #[arg(long, default_value = "teardown", value_parser = ["teardown", "discard", "warn"])]
    max_prefix_action: String,
    /// Minutes a session stays down after a max-prefix teardown.
    #[arg(long, default_value_t = 30)]
    max_prefix_idle_minutes: u32,
    /// A connection's prefixes reaching this percent of --max-prefixes raise a warning
    /// (status `prefixLimitWarning`, metric `bgp_ipv4_prefix_limit_warning`); 0: never.
    #[arg(long, default_value_t = 75, value_parser = clap::value_parser!(u8).range(0..=100))]
    max_prefix_warning: u8,
    /// Smallest hold time accepted from customers (seconds).
    #[arg(long, default_value_t = 90)]
    min_hold_time: u16,
    /// Damping of edge sessions that keep going down soon after coming up: from the
    /// second down within a minute of coming up, the session is held down 2 s, then 4 s,
    /// doubling up to this many seconds (0–3600; 0, the default, turns it off).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=3600))]
    flap_damping_max_secs: u16,
    /// BFD transmit and receive interval beside every session (ms, 50–10000); 0 turns
    /// BFD off.
    #[arg(long, default_value_t = 300, value_parser = parse_bfd_interval)]
    bfd_interval_ms: u32,
    /// BFD detect multiplier (packets missed before a session is declared down).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=50))]
    bfd_multiplier: u8,
    /// The shortest BFD interval a private connection may ask for (its `bfd`; ms).
    #[arg(long, default_value_t = 50, value_parser = parse_bfd_interval)]
    bfd_min_interval_ms: u32,
    /// Minutes of every edge report kept per connection, in memory, for the console's
    /// graphs and `:history` (0: none). About 56 bytes a report.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=1440))]
    history_minutes: u64,
    /// The console's session cookie is Secure (`__Host-`) though this server speaks plain
    /// HTTP: a proxy in front of it terminates TLS.
    #[arg(long)]
    console_secure_cookies: bool,
    /// Hours of one sample a minute kept per connection (0: none). 56 bytes a minute.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(0..=720))]
    history_hours: u64,
    /// Graceful restart time the edges announce (seconds, up to 4095): how long peers
    /// keep an edge's routes while `cic edge` restarts. 0 turns graceful restart off.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u16).range(0..=4095))]
    graceful_restart_secs: u16,
    /// An RPKI cache (RTR, RFC 8210) the edges validate customers' route origins by,
    /// ADDR:PORT; repeat for more, most preferred first. Public connections then refuse
    /// RPKI invalids (RFC 6811).
    #[arg(long = "rpki-cache")]
    rpki_caches: Vec<SocketAddr>,
    /// Private connections refuse RPKI invalids too (with --rpki-cache).
    #[arg(long, requires = "rpki_caches")]
    rpki_reject_invalid_private: bool,
    /// GTSM (RFC 5082) on customers' sessions: the edges take only BGP segments sent
    /// with TTL 255. The default of every connection that does not set `ttlSecurity`.
    #[arg(long)]
    ttl_security: bool,
    /// BGP roles (RFC 9234) on customers' sessions, the cloud as their provider: off,
    /// announce (a router without roles is still taken) or strict. The default of every
    /// connection that does not set `bgpRole`.
    #[arg(long, default_value = "off", value_parser = ["off", "announce", "strict"])]
    bgp_role: String,
    /// Address space taken as public besides the Internet's, repeatable: a lab's or a
    /// test network's range (the lab passes 198.18.0.0/15, the benchmarking range) in
    /// public connections' peerings, registered prefixes and cloud services.
    #[arg(long = "treat-as-public", value_name = "PREFIX")]
    treat_as_public: Vec<ipnet::IpNet>,
    /// MTU of private connections.
    #[arg(long, default_value_t = 8910)]
    peering_mtu: u32,
    /// Quota: private connections per trunk.
    #[arg(long, default_value_t = 5)]
    quota_private_connections_per_trunk: usize,
    /// Quota: public connections per trunk.
    #[arg(long, default_value_t = 5)]
    quota_public_connections_per_trunk: usize,
    /// Quota: prefixes per routing instance.
    #[arg(long, default_value_t = 100)]
    quota_prefixes_per_instance: usize,
    /// Quota: static routes per private connection.
    #[arg(long, default_value_t = 100)]
    quota_static_routes_per_connection: usize,
}

#[derive(clap::Args)]
struct EdgeArgs {
    /// A TOML file of these flags (keys: the long names, `tls-cert = "…"`); flags and
    /// the environment win over it.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Check the flags and the files they name (TLS, CA), say so, and exit.
    #[arg(long)]
    check_config: bool,
    #[arg(long, env = "CIC_SERVER")]
    server: Option<String>,
    /// This edge's token (from `cic edge-router create`); not needed with --tls-cert.
    #[arg(
        long,
        env = "CIC_EDGE_TOKEN",
        hide_env_values = true,
        required_unless_present = "tls_cert"
    )]
    token: Option<String>,
    /// This edge's client certificate (PEM, from `cic edge-router issue-certificate`):
    /// authenticate by mutual TLS. Read again whenever the file changes.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Network namespace that holds this router's ports (default: the agent's own).
    #[arg(long)]
    netns: Option<String>,
    /// Prefix of the namespaces this agent creates, one per routing instance.
    #[arg(long, default_value = "cic-")]
    netns_prefix: String,
    /// Seconds between status reports.
    #[arg(long, default_value_t = 5)]
    report_every: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9180).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Where to keep the last config from the server, to run on if the agent restarts
    /// while the server is away ("none": keep nothing).
    #[arg(long, default_value = "/var/lib/cic-edge")]
    state_dir: String,
}

#[derive(Subcommand)]
enum LabCmd {
    /// Build the lab, run the customer's steps, leave it running.
    Up {
        /// Points of presence (1 or 2); the customer connects at each.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=2))]
        pops: u32,
        /// A flag for the lab's `cic server` (repeat for more), e.g.
        /// `--server-arg=--rpki-cache=127.0.0.1:3323`.
        #[arg(long = "server-arg", allow_hyphen_values = true)]
        server_args: Vec<String>,
        /// The cloud's public services too: their routers and HTTP endpoints, each PoP's
        /// public-services network, a public connection at each PoP.
        #[arg(long)]
        public: bool,
    },
    /// Build the lab, run the customer's steps, ping both ways, tear it down.
    Demo {
        /// Points of presence (1 or 2).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=2))]
        pops: u32,
        /// Public connections too: the on-prem server fetches from Object Storage over
        /// them, and what they do not allow is refused.
        #[arg(long)]
        public: bool,
        /// Leave the lab up afterwards and say how to sign in to its console.
        #[arg(long)]
        keep: bool,
    },
    /// Remove every namespace, link and process the lab made.
    Down,
    /// In a running two-PoP lab: cut the cross-connect carrying traffic while pinging
    /// every 10 ms over IPv4 and IPv6, measure each family's outage, restore it, count
    /// losses (JSON line per run).
    Failover {
        #[arg(long, default_value_t = 1)]
        runs: usize,
        /// Which link of the PoP to cut: its cross-connect to the customer, its link to
        /// the cloud fabric (the PoP must then withdraw the VPC prefix from the customer),
        /// or `silent`: the cross-connect blackholed both ways with its carrier up.
        #[arg(long, default_value = "customer")]
        side: cic_lab::failover::Side,
        /// Active/standby instead of ECMP: the customer makes the PoP not carrying the
        /// flow its standby, by AS-path prepending or by the cloud's low local-preference
        /// community; the active PoP's cross-connect is cut and restored.
        #[arg(long, conflicts_with = "side")]
        standby: Option<cic_lab::Standby>,
        /// Cut the PoP carrying the public flow (the on-prem server's public address →
        /// the public service; the lab must be up with --public).
        #[arg(long, conflicts_with = "standby")]
        public: bool,
        /// First give the lab's private connections these BFD timers
        /// (INTERVAL_MSxMULTIPLIER, e.g. 100x3, or default) through the API, and the
        /// customer's router the config cic generates for them; they stay after the runs.
        #[arg(long)]
        bfd: Option<String>,
    },
    /// In a running two-PoP lab: kill -9 the edge agent of the PoP carrying traffic and
    /// start it again while pinging every 10 ms; report losses and whether the routers
    /// kept the PoP's routes (graceful restart). JSON line per run.
    RestartEdge {
        #[arg(long, default_value_t = 1)]
        runs: usize,
    },
    /// (internal) The lab's stand-in for the operator's fabric automation.
    #[command(hide = true)]
    Fabric {
        #[arg(long)]
        edge_id: String,
        #[arg(long)]
        netns: String,
        #[arg(long)]
        underlay_dev: String,
        /// The services routers' side of public connections' segments instead.
        #[arg(long)]
        public_services: bool,
    },
    /// (internal) The lab's public services' HTTP endpoints.
    #[command(hide = true)]
    Http {
        #[arg(long)]
        netns: String,
        #[arg(long = "listen", required = true)]
        listens: Vec<std::net::SocketAddr>,
    },
}

/// `cic doctor`.
async fn doctor(
    server: Option<&str>,
    tls: &cic_client::tls::ClientTls,
    json: bool,
) -> anyhow::Result<()> {
    use cic_dataplane::doctor;
    let mut checks = doctor::kernel().await;
    checks.extend(doctor::sockets());
    checks.push(doctor::clock());
    if let Some(url) = server {
        let r = match cic_client::tls::http_client(
            url,
            tls,
            reqwest::Client::builder().timeout(Duration::from_secs(10)),
        ) {
            Ok(c) => match c
                .get(format!("{}/readyz", url.trim_end_matches('/')))
                .send()
                .await
            {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => Err(format!("answers, not ready: HTTP {}", resp.status())),
                Err(e) => Err(cic_client::tls::explain(&e, url, tls)),
            },
            Err(e) => Err(e.to_string()),
        };
        checks.push(doctor::Check {
            name: "the cic server",
            ok: r.is_ok(),
            detail: match r {
                Ok(()) => format!(
                    "{url} is ready{}",
                    if url.starts_with("https") {
                        " (TLS verified)"
                    } else {
                        ""
                    }
                ),
                Err(e) => e,
            },
            without: "the edge runs the config it kept, and nothing new",
        });
    }
    let sysctls = doctor::sysctls();
    if json {
        let v = serde_json::json!({
            "checks": checks.iter().map(|c| serde_json::json!({"name": c.name, "ok": c.ok,
                "detail": c.detail, "without": c.without})).collect::<Vec<_>>(),
            "sysctls": sysctls.iter().map(|(k, host, what)| serde_json::json!({"key": k,
                "host": host, "set": what})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for c in &checks {
        if c.ok {
            println!("  ok    {}: {}", c.name, c.detail);
        } else {
            println!(
                "  MISS  {}: {}\n        without it: {}",
                c.name, c.detail, c.without
            );
        }
    }
    println!("sysctls the edge sets (inside its namespaces; this host's value):");
    for (k, host, what) in &sysctls {
        println!("  {k} = {what} (host: {host})");
    }
    Ok(())
}

/// Writes the man page of `cmd` (named `name`, e.g. cic-edge-router-create) and of each of
/// its subcommands; returns how many.
fn man_pages(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> anyhow::Result<usize> {
    let cmd = cmd.clone().name(name.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    std::fs::write(dir.join(format!("{name}.1")), buf)?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        n += man_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(n)
}

/// The settings SIGHUP changes, read again from `argv` and its config file.
fn reload_server(argv: &[std::ffi::OsString]) -> Result<cic_server::Reloadable, String> {
    use clap::{CommandFactory, Parser};
    let args = config_file::expand(&Cli::command(), argv.to_vec()).map_err(|e| format!("{e:#}"))?;
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    let Cmd::Server(ServerCmd { args: a, .. }) = cli.cmd else {
        return Err("not a server command line".into());
    };
    let usable = a.rate_limit >= 0.0
        && a.rate_limit.is_finite()
        && a.rate_burst >= 1.0
        && a.rate_burst.is_finite();
    if !usable {
        return Err("rate-limit must be 0 or more and rate-burst 1 or more".into());
    }
    set_log_level(cli.log_level.as_deref().unwrap_or("info"))?;
    Ok(cic_server::Reloadable {
        limits: cic_server::limits::Limits {
            rate: a.rate_limit,
            burst: a.rate_burst,
            long_polls: a.max_long_polls,
        },
        audit_retention: Duration::from_secs(a.audit_retention_days * 86_400),
    })
}

/// What `cic edge` was started with that only a restart changes, by flag name (the
/// token shown only as given or not).
fn edge_restart_settings(
    ca_cert: &Option<std::path::PathBuf>,
    log_format: &Option<String>,
    a: &EdgeArgs,
) -> Vec<(&'static str, String)> {
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    vec![
        ("server", a.server.clone().unwrap_or_default()),
        ("token", a.token.clone().unwrap_or_default()),
        ("tls-cert", path(&a.tls_cert)),
        ("tls-key", path(&a.tls_key)),
        ("ca-cert", path(ca_cert)),
        ("netns", a.netns.clone().unwrap_or_default()),
        ("netns-prefix", a.netns_prefix.clone()),
        ("report-every", a.report_every.to_string()),
        (
            "metrics-listen",
            a.metrics_listen.map(|m| m.to_string()).unwrap_or_default(),
        ),
        ("state-dir", a.state_dir.clone()),
        ("log-format", log_format.clone().unwrap_or_default()),
    ]
}

/// SIGHUP of `cic edge`: `argv` and its config file read again; the log levels put in
/// force; the settings that differ from `started_with` named (they wait for a restart).
fn reload_edge(
    argv: &[std::ffi::OsString],
    started_with: &[(&'static str, String)],
) -> Result<String, String> {
    use clap::{CommandFactory, Parser};
    let args = config_file::expand(&Cli::command(), argv.to_vec()).map_err(|e| format!("{e:#}"))?;
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    let Cmd::Edge(a) = &cli.cmd else {
        return Err("not an edge command line".into());
    };
    let now = edge_restart_settings(&cli.ca_cert, &cli.log_format, a);
    let level = cli.log_level.as_deref().unwrap_or("info");
    set_log_level(level)?;
    let waiting: Vec<&str> = now
        .iter()
        .zip(started_with)
        .filter(|(n, w)| n.1 != w.1)
        .map(|(n, _)| n.0)
        .collect();
    Ok(if waiting.is_empty() {
        format!("log level {level}")
    } else {
        format!(
            "log level {level}; changed, in force after a restart: {}",
            waiting.join(", ")
        )
    })
}

/// `cic server --check-config`: everything the server would read before serving, read.
fn check_server_config(
    database: &str,
    key_file: Option<&std::path::Path>,
    old: Option<&std::path::Path>,
    listen: &cic_server::listen::ListenOptions,
) -> anyhow::Result<()> {
    if !(database.starts_with("sqlite:")
        || database.starts_with("postgres://")
        || database.starts_with("postgresql://"))
    {
        anyhow::bail!("--database {database:?} is not sqlite://PATH or postgres://…");
    }
    let tls = cic_server::listen::check(listen)?;
    let key = match key_file {
        Some(p) if p.exists() => {
            cic_store::Sealer::read_key(p)?;
            format!("secrets key {}", p.display())
        }
        Some(p) => format!(
            "secrets key {} (to be made at the first start)",
            p.display()
        ),
        None if database.starts_with("postgres") => anyhow::bail!(
            "--secrets-key-file is required with PostgreSQL: every server on the database must seal secrets with the same key"
        ),
        None => "secrets key beside the SQLite file".to_string(),
    };
    if let Some(o) = old {
        cic_store::Sealer::read_key(o)?;
    }
    println!(
        "cic server: config OK ({}://{}, {key})",
        if tls.is_some() { "https" } else { "http" },
        listen.addr
    );
    Ok(())
}

/// The key in `path`, or a new one written there (mode 0600) if there is no file.
fn open_or_create_key(path: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    if path.exists() {
        return Ok(cic_store::Sealer::read_key(path)?);
    }
    let k = cic_store::Sealer::create_key_file(path)?;
    eprintln!(
        "created a new secrets key in {} (mode 0600): keep it, and a copy of it apart from the database",
        path.display()
    );
    Ok(k)
}

/// What seals the server's secrets: the key file given, or beside a SQLite file, or (an
/// in-memory database) a key that dies with it.
fn sealer(
    database: &str,
    key_file: Option<&std::path::Path>,
    old: Option<&std::path::Path>,
) -> anyhow::Result<cic_store::Sealer> {
    let path = match key_file {
        Some(p) => p.to_path_buf(),
        None if database.contains(":memory:") => {
            let mut k = [0u8; 32];
            std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut k)?;
            return Ok(cic_store::Sealer::new(k));
        }
        None => match database
            .strip_prefix("sqlite://")
            .or_else(|| database.strip_prefix("sqlite:"))
        {
            Some(file) => {
                let file = file.split('?').next().unwrap_or(file);
                std::path::PathBuf::from(format!("{file}.secrets-key"))
            }
            None => anyhow::bail!(
                "--secrets-key-file is required with PostgreSQL: every server on the database must seal secrets with the same key (`umask 077; openssl rand -hex 32 > /etc/cic/secrets.key`)"
            ),
        },
    };
    let mut s = cic_store::Sealer::new(open_or_create_key(&path)?);
    if let Some(o) = old {
        s = s.and_old(cic_store::Sealer::read_key(o)?);
    }
    Ok(s)
}

/// `--log-format json` (set once in `main`).
static LOG_JSON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
/// `--log-level` (set once in `main`).
static LOG_LEVEL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

type LogFilter =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;
/// Changes the log levels of the running process.
static LOG_FILTER: std::sync::OnceLock<LogFilter> = std::sync::OnceLock::new();

/// Logs of `cic server`, `cic edge` and the lab's daemons: levels per module
/// (`--log-level`, `RUST_LOG`: `info`, `info,cic_bgp=debug`; changed at run time by
/// [`set_log_level`]), text or one JSON object a line (`--log-format json`).
fn init_tracing() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let level = LOG_LEVEL.get().cloned().unwrap_or_else(|| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let json = LOG_JSON.get().copied().unwrap_or(false);
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_target(false).boxed()
    };
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = LOG_FILTER.set(handle);
    }
}

/// Puts new log levels in force; an unreadable directive is an error naming it.
fn set_log_level(level: &str) -> Result<(), String> {
    let f = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| format!("log-level {level:?}: {e}"))?;
    match LOG_FILTER.get() {
        Some(h) => h.reload(f).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    use clap::CommandFactory;
    // `cic server|edge --config FILE`: the file's keys become flags before the command
    // line's (which win).
    let args = match config_file::expand(&Cli::command(), std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let _ = LOG_JSON.set(cli.log_format.as_deref() == Some("json"));
    if let Some(l) = &cli.log_level {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(l) {
            eprintln!("error: --log-level {l:?}: {e}");
            return ExitCode::from(2);
        }
        let _ = LOG_LEVEL.set(l.clone());
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // 3: the server refused the request (bad input, conflict, not found, …);
            // 1: anything else (unreachable, timeout, lab failure).
            if e.downcast_ref::<Refused>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Where the resource commands go and how they print: flags and environment first, then
/// the profile, then the defaults.
struct Resolved {
    server: String,
    token: String,
    tls: cic_client::tls::ClientTls,
    out: commands::Output,
}

fn resolve(cli: &Cli) -> anyhow::Result<Resolved> {
    let file = config::path();
    let cfg = config::load(&file)?;
    let (_, p) = cfg.active(cli.profile.as_deref())?;
    let format = match (&cli.format, cli.json) {
        (Some(f), _) => f.clone(),
        (None, true) => "json".to_string(),
        (None, false) => p.format.clone().unwrap_or_else(|| "table".into()),
    };
    let format = commands::Format::parse(&format).ok_or_else(|| {
        anyhow::anyhow!(
            "format {format:?} in {} is not one of {}",
            file.display(),
            commands::FORMATS.join(", ")
        )
    })?;
    Ok(Resolved {
        server: cli
            .server
            .clone()
            .or(p.server)
            .unwrap_or_else(|| "http://127.0.0.1:8080".into()),
        token: cli.token.clone().or(p.token).unwrap_or_default(),
        tls: cic_client::tls::ClientTls {
            ca_cert: cli.ca_cert.clone().or(p.ca_cert.map(Into::into)),
            identity: None,
            insecure_http: cli.insecure_http,
        },
        out: commands::Output {
            format,
            quiet: cli.quiet,
            wait: !cli.no_wait,
            timeout: Duration::from_secs(cli.timeout),
            folder: std::env::var("CIC_FOLDER")
                .ok()
                .filter(|f| !f.is_empty())
                .or(p.folder),
        },
    })
}

fn api(r: &Resolved) -> anyhow::Result<client::Api> {
    if r.token.is_empty() {
        anyhow::bail!("no token: pass --token, set CIC_TOKEN or `cic config set token T`");
    }
    client::Api::new(&r.server, &r.token, r.tls.clone())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let needs_api = !matches!(
        cli.cmd,
        Cmd::Server(_)
            | Cmd::Edge(_)
            | Cmd::Lab(_)
            | Cmd::Config(_)
            | Cmd::Bench(_)
            | Cmd::Bgp(_)
            | Cmd::Pki(_)
            | Cmd::Completion { .. }
            | Cmd::Doctor
            | Cmd::Man { .. }
    );
    // Only the resource commands read the profile: a broken config file does not stop
    // a server or an edge.
    let r = if needs_api {
        Some(resolve(&cli)?)
    } else {
        None
    };
    let direct_server = cli
        .server
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let r = r.as_ref();
    let with_api = || -> anyhow::Result<(client::Api, &commands::Output)> {
        let r = r.ok_or_else(|| anyhow::anyhow!("internal: no API settings"))?;
        Ok((api(r)?, &r.out))
    };
    match cli.cmd {
        Cmd::Server(ServerCmd {
            sub:
                Some(ServerSub::RotateSecretsKey {
                    database,
                    secrets_key_file,
                    new_secrets_key_file,
                }),
            ..
        }) => {
            let old = cic_store::Sealer::read_key(&secrets_key_file)?;
            let new = open_or_create_key(&new_secrets_key_file)?;
            let store = cic_store::Store::open(&database)
                .await?
                .with_sealer(cic_store::Sealer::new(new).and_old(old));
            let n = store.reseal().await?;
            // No copy of a row sealed under the old key is left behind.
            store.compact().await?;
            println!(
                "{n} documents sealed again under key {}; start the servers with --secrets-key-file {}",
                store.sealing().0.as_ref().map(|s| s.key_id()).unwrap_or(""),
                new_secrets_key_file.display()
            );
            Ok(())
        }
        Cmd::Server(ServerCmd { args: a, .. }) => {
            init_tracing();
            let bgp = cic_model::edge::BgpSettings {
                min_hold_time_secs: a.min_hold_time,
                max_prefixes: a.max_prefixes,
                max_prefix_action: match a.max_prefix_action.as_str() {
                    "discard" => cic_model::edge::MaxPrefixAction::Discard,
                    "warn" => cic_model::edge::MaxPrefixAction::Warn,
                    _ => cic_model::edge::MaxPrefixAction::Teardown,
                },
                max_prefix_idle_secs: a.max_prefix_idle_minutes * 60,
                max_prefix_warning_percent: a.max_prefix_warning,
                flap_damping_max_secs: a.flap_damping_max_secs,
                bfd: cic_model::edge::BfdSettings {
                    enabled: a.bfd_interval_ms > 0,
                    interval_ms: a.bfd_interval_ms,
                    multiplier: a.bfd_multiplier,
                },
                graceful_restart_secs: a.graceful_restart_secs,
                rpki_caches: a.rpki_caches.clone(),
                rpki_reject_invalid_private: a.rpki_reject_invalid_private,
                ttl_security: a.ttl_security,
                bgp_role: match a.bgp_role.as_str() {
                    "announce" => cic_model::edge::BgpRoleMode::Announce,
                    "strict" => cic_model::edge::BgpRoleMode::Strict,
                    _ => cic_model::edge::BgpRoleMode::Off,
                },
                ..Default::default()
            };
            let usable = a.rate_limit >= 0.0
                && a.rate_limit.is_finite()
                && a.rate_burst >= 1.0
                && a.rate_burst.is_finite();
            if !usable {
                anyhow::bail!("--rate-limit must be 0 or more and --rate-burst 1 or more");
            }
            if a.cloud_asn == 0 || a.cloud_asn == 23456 {
                anyhow::bail!("--cloud-asn {} is not a usable ASN", a.cloud_asn);
            }
            for n in &a.treat_as_public {
                if let Err(why) = cic_model::validate::treatable_as_public(n) {
                    anyhow::bail!("--treat-as-public {n}: {why}");
                }
            }
            if a.bfd_min_interval_ms == 0 {
                anyhow::bail!(
                    "--bfd-min-interval-ms 0: give the shortest interval (50 ms or more)"
                );
            }
            if a.bfd_interval_ms > 0 && a.bfd_min_interval_ms > a.bfd_interval_ms {
                anyhow::bail!(
                    "--bfd-min-interval-ms {} is above --bfd-interval-ms {}: the default must be one a connection may ask for",
                    a.bfd_min_interval_ms,
                    a.bfd_interval_ms
                );
            }
            let config = cic_server::ServerConfig {
                cloud_asn: a.cloud_asn,
                bgp,
                treat_as_public: a.treat_as_public.clone(),
                bfd_min_interval_ms: a.bfd_min_interval_ms,
                peering_mtu: a.peering_mtu,
                max_connections_per_trunk: a.quota_private_connections_per_trunk,
                max_public_connections_per_trunk: a.quota_public_connections_per_trunk,
                max_prefixes_per_instance: a.quota_prefixes_per_instance,
                max_static_routes_per_connection: a.quota_static_routes_per_connection,
                console_secure_cookies: a.console_secure_cookies,
                history: cic_server::history::HistoryConfig {
                    recent: Duration::from_secs(a.history_minutes * 60),
                    day: Duration::from_secs(a.history_hours * 3600),
                    ..Default::default()
                },
                ..Default::default()
            };
            let admin = std::env::var("CIC_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty());
            let edge_auth = cic_server::auth::EdgeAuth {
                certificates: a.client_ca.is_some(),
                tokens: a.client_ca.is_none() || a.allow_edge_tokens,
                issuer: match (&a.client_ca, &a.client_ca_key) {
                    (Some(c), Some(k)) => {
                        Some(std::sync::Arc::new(cic_server::pki::Ca::load(c, k)?))
                    }
                    _ => None,
                },
            };
            let config = cic_server::ServerConfig {
                edge_auth,
                audit_retention: Duration::from_secs(a.audit_retention_days * 86_400),
                limits: cic_server::limits::Limits {
                    rate: a.rate_limit,
                    burst: a.rate_burst,
                    long_polls: a.max_long_polls,
                },
                ..config
            };
            let listen = cic_server::listen::ListenOptions {
                addr: a.listen,
                tls: a.tls_cert.map(|cert| cic_server::listen::TlsFiles {
                    cert,
                    key: a.tls_key.unwrap_or_default(),
                    client_ca: a.client_ca,
                }),
                insecure_http: cli.insecure_http,
                max_connections: a.max_connections.max(1),
                header_timeout: Duration::from_secs(a.header_timeout_secs),
            };
            if a.check_config {
                return check_server_config(
                    &a.database,
                    a.secrets_key_file.as_deref(),
                    a.old_secrets_key_file.as_deref(),
                    &listen,
                );
            }
            let secrets = sealer(
                &a.database,
                a.secrets_key_file.as_deref(),
                a.old_secrets_key_file.as_deref(),
            )?;
            // SIGHUP reads the command line and config file again for what can change
            // without a restart.
            let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
            let on_reload: cic_server::OnReload = Box::new(move || reload_server(&argv));
            cic_server::serve(
                listen,
                &a.database,
                secrets,
                config,
                admin,
                Some(on_reload),
                shutdown_signal(),
            )
            .await?;
            Ok(())
        }
        Cmd::Edge(a) => {
            init_tracing();
            let started_with = edge_restart_settings(&cli.ca_cert, &cli.log_format, &a);
            let server = a.server.unwrap_or(direct_server);
            let tls = cic_client::tls::ClientTls {
                ca_cert: cli.ca_cert.clone(),
                identity: a.tls_cert.zip(a.tls_key),
                insecure_http: cli.insecure_http,
            };
            if a.check_config {
                cic_client::tls::http_client(&server, &tls, reqwest::Client::builder())?;
                println!(
                    "cic edge: config OK (server {server}{})",
                    if tls.identity.is_some() {
                        ", by certificate"
                    } else {
                        ", by token"
                    }
                );
                return Ok(());
            }
            let opts = cic_edge::EdgeOptions {
                server,
                token: a.token,
                tls,
                host_netns: a.netns,
                netns_prefix: a.netns_prefix,
                report_every: Duration::from_secs(a.report_every.max(1)),
                poll_wait: Duration::from_secs(25),
                metrics_listen: a.metrics_listen,
                state_dir: (a.state_dir != "none").then(|| a.state_dir.into()),
            };
            // SIGHUP reads the command line and config file again: log levels change
            // now; a change to what the agent was started with is named, for a restart.
            // (Its certificate files are read again whenever they change.) Handled
            // before anything else starts, so no SIGHUP ends the agent.
            let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
            let agent = cic_edge::Agent::new(opts).await?;
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    match reload_edge(&argv, &started_with) {
                        Ok(done) => tracing::info!("config reloaded: {done}"),
                        Err(e) => tracing::warn!("config not reloaded, nothing changed: {e}"),
                    }
                }
            });
            agent.run(shutdown_signal()).await;
            Ok(())
        }
        Cmd::Bgp(b) => bgp(b, cli.json || cli.format.as_deref() == Some("json")).await,
        Cmd::Lab(l) => match l {
            LabCmd::Up {
                pops,
                server_args,
                public,
            } => cic_lab::up_and_explain(pops, &server_args, public).await,
            LabCmd::Demo { pops, public, keep } => cic_lab::demo(pops, public, keep).await,
            LabCmd::Http { netns, listens } => cic_lab::public::serve_http(&netns, &listens),
            LabCmd::Down => cic_lab::down(),
            LabCmd::Failover {
                bfd: Some(timers),
                runs,
                side,
                standby,
                public,
            } => {
                cic_lab::failover::set_bfd(&timers)?;
                match (standby, public) {
                    (Some(how), _) => cic_lab::failover::run_standby(runs, how),
                    (None, true) => cic_lab::public_failover::run(runs, side),
                    (None, false) => cic_lab::failover::run(runs, side),
                }
            }
            LabCmd::Failover {
                runs,
                standby: Some(how),
                ..
            } => cic_lab::failover::run_standby(runs, how),
            LabCmd::Failover {
                runs,
                side,
                public: true,
                ..
            } => cic_lab::public_failover::run(runs, side),
            LabCmd::Failover { runs, side, .. } => cic_lab::failover::run(runs, side),
            LabCmd::RestartEdge { runs } => cic_lab::failover::restart_runs(runs),
            LabCmd::Fabric {
                edge_id,
                netns,
                underlay_dev,
                public_services,
            } => {
                init_tracing();
                let tls = cic_client::tls::ClientTls {
                    ca_cert: cli.ca_cert.clone(),
                    identity: None,
                    insecure_http: cli.insecure_http,
                };
                cic_lab::fabric::run(
                    &direct_server,
                    &tls,
                    cli.token.as_deref().unwrap_or_default(),
                    cic_lab::fabric::Segments {
                        edge_id: &edge_id,
                        netns: &netns,
                        underlay_dev: &underlay_dev,
                        public_services,
                    },
                    shutdown_signal(),
                )
                .await
            }
        },
        Cmd::Config(c) => c.run(cli.profile.as_deref()),
        Cmd::Doctor => {
            let server = cli.server.clone();
            let tls = cic_client::tls::ClientTls {
                ca_cert: cli.ca_cert.clone(),
                identity: None,
                insecure_http: cli.insecure_http,
            };
            doctor(
                server.as_deref(),
                &tls,
                cli.json || cli.format.as_deref() == Some("json"),
            )
            .await
        }
        Cmd::Completion { shell } => {
            use clap::CommandFactory;
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "cic", &mut buf);
            // A closed pipe (`| head`) is the reader's choice, not an error.
            match std::io::Write::write_all(&mut std::io::stdout(), &buf) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
        Cmd::Man { dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir)?;
            let n = man_pages(&Cli::command(), "cic", &dir)?;
            println!("{n} man pages in {}", dir.display());
            Ok(())
        }
        Cmd::Pki(PkiCmd::Init {
            dir,
            names,
            days,
            force,
        }) => credentials::pki_init(&dir, &names, days, force),
        Cmd::Bench(BenchCmd::Flood { seconds, flooders }) => {
            if seconds == 0 || flooders == 0 {
                anyhow::bail!("--seconds and --flooders must be at least 1");
            }
            bench_flood::flood(bench_flood::Options { seconds, flooders }).await
        }
        Cmd::Bench(BenchCmd::Api {
            connections,
            database,
            gets,
            list_rounds,
        }) => {
            if connections == 0 || gets == 0 || list_rounds == 0 {
                anyhow::bail!("--connections, --gets and --list-rounds must be at least 1");
            }
            bench::api(bench::Options {
                connections,
                database,
                gets,
                list_rounds,
            })
            .await
        }
        Cmd::Bench(BenchCmd::Bgp {
            mode,
            prefixes,
            peers,
            per_update,
            sets,
            speakers,
        }) => {
            let mode = match mode.as_str() {
                "ingest" => cic_speaker::bench::Mode::Ingest,
                "monitor" => cic_speaker::bench::Mode::Monitor,
                "export" => cic_speaker::bench::Mode::Export,
                other => anyhow::bail!("--mode {other:?}: ingest, monitor or export"),
            };
            if sets > prefixes {
                anyhow::bail!("--sets {sets}: at most --prefixes ({prefixes})");
            }
            let feed = cic_speaker::bench::Feed {
                prefixes,
                peers,
                per_update,
                sets,
            };
            let exe = std::env::current_exe()?;
            let results = tokio::task::spawn_blocking(move || {
                cic_speaker::bench::run(mode, &feed, &speakers, &exe)
            })
            .await?
            .map_err(anyhow::Error::msg)?;
            println!("{}", serde_json::to_string_pretty(&results)?);
            Ok(())
        }
        Cmd::Bench(BenchCmd::Scale {
            connections,
            keep,
            bring_up_only,
            bfd_ms,
            bfd_watch_secs,
            in_flight,
            report_every,
        }) => {
            let opts = cic_lab::scale::Options {
                connections,
                bring_up_only,
                bfd_ms,
                bfd_watch_secs,
                in_flight: usize::from(in_flight),
                report_every,
            };
            let run = cic_lab::scale::bench(opts, keep).await?;
            println!("{}", serde_json::to_string_pretty(&run)?);
            Ok(())
        }
        Cmd::Bench(BenchCmd::Routes { routes, rounds }) => {
            let report = cic_dataplane::bench::routes(routes as usize, rounds as usize).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Cmd::Bench(BenchCmd::Provision { runs }) => {
            if runs == 0 {
                anyhow::bail!("--runs must be at least 1");
            }
            cic_lab::bench::provision(runs).await
        }
        Cmd::Pop(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::EdgeRouter(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::Trunk(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::Connection(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::PublicConnection(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::Partner(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::CloudService(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::RoutingInstance(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::Operation(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::Folder(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::ApiKey(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::Audit(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
    }
}

fn parse_bfd_interval(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of milliseconds"))?;
    if v != 0 && !(50..=10_000).contains(&v) {
        return Err(format!("{v} ms is outside 50–10000 ms (0 turns BFD off)"));
    }
    Ok(v)
}

async fn bgp(cmd: BgpCmd, json_flag: bool) -> anyhow::Result<()> {
    use cic_speaker::control::{self, Request};
    let show = |b: Vec<u8>| -> anyhow::Result<()> {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&b)?;
        out.write_all(b"\n")?;
        Ok(())
    };
    // Routes as JSON (`json`), or as a table.
    let routes = |body: Vec<u8>, json: bool| -> anyhow::Result<()> {
        if json || json_flag {
            return show(body);
        }
        let routes: Vec<control::Route> = serde_json::from_slice(&body)?;
        print!("{}", control::routes_table(&routes));
        Ok(())
    };
    match cmd {
        BgpCmd::Run {
            config,
            socket,
            check,
        } => {
            let cfg = cic_speaker::Config::load(&config).map_err(anyhow::Error::msg)?;
            if check {
                println!(
                    "{}: AS{}, {} neighbors, {} originated prefixes",
                    config.display(),
                    cfg.params.local_asn,
                    cfg.neighbors.len(),
                    cfg.params.announce.len()
                );
                return Ok(());
            }
            init_tracing();
            let mut speaker = cic_speaker::Speaker::start(cfg, &socket)
                .await
                .map_err(anyhow::Error::msg)?;
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
            let stop = shutdown_signal();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = hup.recv() => match cic_speaker::Config::load(&config) {
                        Ok(cfg) => match speaker.reload(cfg).await {
                            Ok(done) => tracing::info!("reloaded {}: {done}", config.display()),
                            Err(e) => tracing::warn!("reload refused: {e}"),
                        },
                        // A config that does not load changes nothing; the speaker runs on.
                        Err(e) => tracing::warn!("reload refused: {e}"),
                    },
                }
            }
            speaker.stop("cic bgp run is stopping").await;
            Ok(())
        }
        BgpCmd::Show(BgpShow::Summary { socket }) => {
            let body = control::query(&socket, Request::Summary)
                .await
                .map_err(anyhow::Error::msg)?;
            if json_flag {
                return show(body);
            }
            let s: control::Summary = serde_json::from_slice(&body)?;
            print!("{}", control::summary_table(&s));
            Ok(())
        }
        BgpCmd::Show(BgpShow::Routes {
            socket,
            count,
            json,
        }) => {
            if count {
                let body = control::query(&socket, Request::Count)
                    .await
                    .map_err(anyhow::Error::msg)?;
                return show(body);
            }
            let body = control::query(&socket, Request::Routes)
                .await
                .map_err(anyhow::Error::msg)?;
            routes(body, json)
        }
        BgpCmd::Show(BgpShow::Neighbor {
            address,
            which,
            socket,
            json,
        }) => {
            let which = match which {
                NeighborRoutes::Received => control::Which::Received,
                NeighborRoutes::Accepted => control::Which::Accepted,
                NeighborRoutes::Advertised => control::Which::Advertised,
            };
            let body = control::query(&socket, Request::Neighbor { address, which })
                .await
                .map_err(anyhow::Error::msg)?;
            routes(body, json)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every command and subcommand says what it does in its help (and so in its man page
    /// and its completion).
    #[test]
    fn every_subcommand_has_help_text() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for s in c.get_subcommands().filter(|s| !s.is_hide_set()) {
                let p = format!("{path} {}", s.get_name());
                if s.get_about().is_none() {
                    missing.push(p.clone());
                }
                walk(s, &p, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "cic", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }
}
