//! The command line: every command, subcommand and flag of `cic` (clap derives the
//! parser, the help, the shell completions and the man pages from these).

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

use crate::{audit, commands, config};

#[derive(Parser)]
#[command(
    name = "cic",
    version,
    about = "cic — an open-source Cloud Interconnect"
)]
pub(crate) struct Cli {
    /// API server URL for the resource commands [default: the profile's, else
    /// http://127.0.0.1:8080].
    #[arg(long, global = true, env = "CIC_SERVER")]
    pub(crate) server: Option<String>,
    /// Bearer token for the resource commands [default: the profile's].
    #[arg(long, global = true, env = "CIC_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// CA certificate (PEM) the server's certificate must chain to [default: the
    /// profile's, else the system's CAs].
    #[arg(long, global = true, env = "CIC_CA_CERT")]
    pub(crate) ca_cert: Option<std::path::PathBuf>,
    /// Allow plain HTTP to (for `cic server`: on) an address that is not loopback: tokens
    /// and secrets then cross the network in clear.
    #[arg(long, global = true)]
    pub(crate) insecure_http: bool,
    /// Log levels of the daemons, per module (`info`, `info,cic_bgp=debug`); SIGHUP sets
    /// the server's again from its config file.
    #[arg(long, global = true, env = "RUST_LOG")]
    pub(crate) log_level: Option<String>,
    /// Logs of the daemons (server, edge): text, or json (one object a line).
    #[arg(long, global = true, env = "CIC_LOG_FORMAT", value_parser = ["text", "json"])]
    pub(crate) log_format: Option<String>,
    /// Profile of `cic config` to take server, token, folder and format from.
    #[arg(long, global = true, env = "CIC_PROFILE")]
    pub(crate) profile: Option<String>,
    /// Output: table (lists as tables, resources as YAML), json or yaml [default: the
    /// profile's, else table].
    #[arg(long, global = true, value_parser = commands::FORMATS)]
    pub(crate) format: Option<String>,
    /// Same as --format json.
    #[arg(long, global = true, hide = true)]
    pub(crate) json: bool,
    /// Do not wait for mutations to be applied; print the operation at once.
    #[arg(long = "async", global = true)]
    pub(crate) no_wait: bool,
    /// No progress while waiting, and no summary line when a mutation is done (the exit
    /// status says it; errors are still printed; --format json|yaml still prints).
    #[arg(long, short = 'q', global = true)]
    pub(crate) quiet: bool,
    /// How long to wait for a mutation, in seconds.
    #[arg(long, global = true, default_value_t = 120)]
    pub(crate) timeout: u64,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
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
pub(crate) enum BgpCmd {
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
pub(crate) enum BgpShow {
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
pub(crate) enum NeighborRoutes {
    Received,
    Accepted,
    Advertised,
}

#[derive(Subcommand)]
pub(crate) enum BenchCmd {
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
        /// The server's damping of sessions that keep going down soon after coming up:
        /// held down 2 s, doubling up to this many seconds (`cic server
        /// --flap-damping-max-secs`; 0, the default, off).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=3600))]
        flap_damping_max_secs: u32,
    },
}

#[derive(Subcommand)]
pub(crate) enum PkiCmd {
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
pub(crate) struct ServerCmd {
    #[command(subcommand)]
    pub(crate) sub: Option<ServerSub>,
    #[command(flatten)]
    pub(crate) args: ServerArgs,
}

#[derive(Subcommand)]
pub(crate) enum ServerSub {
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
pub(crate) struct ServerArgs {
    /// A TOML file of these flags (keys: the long names, `tls-cert = "…"`); flags and
    /// the environment win over it.
    #[arg(long)]
    pub(crate) config: Option<std::path::PathBuf>,
    /// Check the flags and the files they name (TLS, CA, secrets key), say so, and exit.
    #[arg(long)]
    pub(crate) check_config: bool,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// The server's certificate chain (PEM): serve HTTPS (TLS 1.2 and 1.3). Read again
    /// on SIGHUP, with the key and the client CA.
    #[arg(long, requires = "tls_key")]
    pub(crate) tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<std::path::PathBuf>,
    /// CA certificate (PEM) of edges' client certificates: edges authenticate by mutual
    /// TLS, their certificate naming their edge (URI SAN spiffe://cic/edge/ID).
    #[arg(long, requires = "tls_cert")]
    pub(crate) client_ca: Option<std::path::PathBuf>,
    /// The private key of --client-ca: the server then issues edges' certificates
    /// (`cic edge-router issue-certificate`, `rotate-credentials`).
    #[arg(long, requires = "client_ca")]
    pub(crate) client_ca_key: Option<std::path::PathBuf>,
    /// With --client-ca: accept edge tokens too (edges moving to certificates).
    #[arg(long, requires = "client_ca")]
    pub(crate) allow_edge_tokens: bool,
    /// The key that seals secrets (TCP-MD5 keys) in the database: 64 hex digits, mode
    /// 0600; made if missing [default: DATABASE_FILE.secrets-key beside a SQLite file;
    /// required with PostgreSQL, the same file on every server].
    #[arg(long, env = "CIC_SECRETS_KEY_FILE")]
    pub(crate) secrets_key_file: Option<std::path::PathBuf>,
    /// A key being replaced: secrets sealed with it are still read (and sealed again
    /// with --secrets-key-file).
    #[arg(long)]
    pub(crate) old_secrets_key_file: Option<std::path::PathBuf>,
    /// Requests per second one credential (a token, an edge's certificate, an address)
    /// may make, sustained; more get 429 with Retry-After. 0: no limit.
    #[arg(long, default_value_t = 100.0)]
    pub(crate) rate_limit: f64,
    /// Requests one credential may make at once after being idle.
    #[arg(long, default_value_t = 400.0)]
    pub(crate) rate_burst: f64,
    /// Long-polls (waitSeconds) one credential may hold open at once; 0: no limit.
    #[arg(long, default_value_t = 32)]
    pub(crate) max_long_polls: usize,
    /// Days audit events are kept.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub(crate) audit_retention_days: u64,
    /// Connections open at once, from everyone.
    #[arg(long, default_value_t = 4096)]
    pub(crate) max_connections: usize,
    /// Seconds a client has to send a request's headers (and finish a TLS handshake).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub(crate) header_timeout_secs: u64,
    /// sqlite://PATH (created on first start) or postgres://…
    #[arg(long, default_value = "sqlite://./cic.db")]
    pub(crate) database: String,
    /// The cloud's ASN, local AS of every edge session.
    #[arg(long, default_value_t = 200_350)]
    pub(crate) cloud_asn: u32,
    /// Prefixes accepted per private connection.
    #[arg(long, default_value_t = 500)]
    pub(crate) max_prefixes: u32,
    /// What exceeding it does: teardown (Cease, then idle), discard or warn.
    #[arg(long, default_value = "teardown", value_parser = ["teardown", "discard", "warn"])]
    pub(crate) max_prefix_action: String,
    /// Minutes a session stays down after a max-prefix teardown.
    #[arg(long, default_value_t = 30)]
    pub(crate) max_prefix_idle_minutes: u32,
    /// A connection's prefixes reaching this percent of --max-prefixes raise a warning
    /// (status `prefixLimitWarning`, metric `bgp_ipv4_prefix_limit_warning`); 0: never.
    #[arg(long, default_value_t = 75, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub(crate) max_prefix_warning: u8,
    /// Smallest hold time accepted from customers (seconds).
    #[arg(long, default_value_t = 90)]
    pub(crate) min_hold_time: u16,
    /// Damping of edge sessions that keep going down soon after coming up: from the
    /// second down within a minute of coming up, the session is held down 2 s, then 4 s,
    /// doubling up to this many seconds (0–3600; 0, the default, turns it off).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=3600))]
    pub(crate) flap_damping_max_secs: u16,
    /// BFD transmit and receive interval beside every session (ms, 50–10000); 0 turns
    /// BFD off.
    #[arg(long, default_value_t = 300, value_parser = parse_bfd_interval)]
    pub(crate) bfd_interval_ms: u32,
    /// BFD detect multiplier (packets missed before a session is declared down).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=50))]
    pub(crate) bfd_multiplier: u8,
    /// The shortest BFD interval a private connection may ask for (its `bfd`; ms).
    #[arg(long, default_value_t = 50, value_parser = parse_bfd_interval)]
    pub(crate) bfd_min_interval_ms: u32,
    /// Minutes of every edge report kept per connection, in memory, for the console's
    /// graphs and `:history` (0: none). About 56 bytes a report.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=1440))]
    pub(crate) history_minutes: u64,
    /// The console's session cookie is Secure (`__Host-`) though this server speaks plain
    /// HTTP: a proxy in front of it terminates TLS.
    #[arg(long)]
    pub(crate) console_secure_cookies: bool,
    /// Hours of one sample a minute kept per connection (0: none). 56 bytes a minute.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(0..=720))]
    pub(crate) history_hours: u64,
    /// Graceful restart time the edges announce (seconds, up to 4095): how long peers
    /// keep an edge's routes while `cic edge` restarts. 0 turns graceful restart off.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u16).range(0..=4095))]
    pub(crate) graceful_restart_secs: u16,
    /// An RPKI cache (RTR, RFC 8210) the edges validate customers' route origins by,
    /// ADDR:PORT; repeat for more, most preferred first. Public connections then refuse
    /// RPKI invalids (RFC 6811).
    #[arg(long = "rpki-cache")]
    pub(crate) rpki_caches: Vec<SocketAddr>,
    /// Private connections refuse RPKI invalids too (with --rpki-cache).
    #[arg(long, requires = "rpki_caches")]
    pub(crate) rpki_reject_invalid_private: bool,
    /// GTSM (RFC 5082) on customers' sessions: the edges take only BGP segments sent
    /// with TTL 255. The default of every connection that does not set `ttlSecurity`.
    #[arg(long)]
    pub(crate) ttl_security: bool,
    /// BGP roles (RFC 9234) on customers' sessions, the cloud as their provider: off,
    /// announce (a router without roles is still taken) or strict. The default of every
    /// connection that does not set `bgpRole`.
    #[arg(long, default_value = "off", value_parser = ["off", "announce", "strict"])]
    pub(crate) bgp_role: String,
    /// Address space taken as public besides the Internet's, repeatable: a lab's or a
    /// test network's range (the lab passes 198.18.0.0/15, the benchmarking range) in
    /// public connections' peerings, registered prefixes and cloud services.
    #[arg(long = "treat-as-public", value_name = "PREFIX")]
    pub(crate) treat_as_public: Vec<ipnet::IpNet>,
    /// MTU of private connections.
    #[arg(long, default_value_t = 8910)]
    pub(crate) peering_mtu: u32,
    /// Quota: private connections per trunk.
    #[arg(long, default_value_t = 5)]
    pub(crate) quota_private_connections_per_trunk: usize,
    /// Quota: public connections per trunk.
    #[arg(long, default_value_t = 5)]
    pub(crate) quota_public_connections_per_trunk: usize,
    /// Quota: prefixes per routing instance.
    #[arg(long, default_value_t = 100)]
    pub(crate) quota_prefixes_per_instance: usize,
    /// Quota: static routes per private connection.
    #[arg(long, default_value_t = 100)]
    pub(crate) quota_static_routes_per_connection: usize,
}

#[derive(clap::Args)]
pub(crate) struct EdgeArgs {
    /// A TOML file of these flags (keys: the long names, `tls-cert = "…"`); flags and
    /// the environment win over it.
    #[arg(long)]
    pub(crate) config: Option<std::path::PathBuf>,
    /// Check the flags and the files they name (TLS, CA), say so, and exit.
    #[arg(long)]
    pub(crate) check_config: bool,
    #[arg(long, env = "CIC_SERVER")]
    pub(crate) server: Option<String>,
    /// This edge's token (from `cic edge-router create`); not needed with --tls-cert.
    #[arg(
        long,
        env = "CIC_EDGE_TOKEN",
        hide_env_values = true,
        required_unless_present = "tls_cert"
    )]
    pub(crate) token: Option<String>,
    /// This edge's client certificate (PEM, from `cic edge-router issue-certificate`):
    /// authenticate by mutual TLS. Read again whenever the file changes.
    #[arg(long, requires = "tls_key")]
    pub(crate) tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<std::path::PathBuf>,
    /// Network namespace that holds this router's ports (default: the agent's own).
    #[arg(long)]
    pub(crate) netns: Option<String>,
    /// Prefix of the namespaces this agent creates, one per routing instance. It takes for
    /// its own (and removes when no instance wants it) only a namespace named this prefix
    /// and an instance's id, never another agent's whose prefix nests in it.
    #[arg(long, default_value = "cic-")]
    pub(crate) netns_prefix: String,
    /// Seconds between status reports.
    #[arg(long, default_value_t = 5)]
    pub(crate) report_every: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9180).
    #[arg(long)]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Where to keep the last config from the server, to run on if the agent restarts
    /// while the server is away ("none": keep nothing).
    #[arg(long, default_value = "/var/lib/cic-edge")]
    pub(crate) state_dir: String,
}

#[derive(Subcommand)]
pub(crate) enum LabCmd {
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

fn parse_bfd_interval(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of milliseconds"))?;
    if v != 0 && !(50..=10_000).contains(&v) {
        return Err(format!("{v} ms is outside 50–10000 ms (0 turns BFD off)"));
    }
    Ok(v)
}
