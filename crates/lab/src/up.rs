//! `cic lab up`: the lab built and the customer's steps run ([`up_opts`]), one function a
//! step: the server, the operator's PoPs and edges, the customer's tenancy, the edges'
//! agents and fabric automation, the routers, then the customer's trunks, connections and
//! routing instance, and the wait for sessions and routes.

use super::*;

/// What the lab made at one PoP.
struct PopMade {
    pop: Pop,
    edge_id: String,
    edge_metrics: String,
    trunk: String,
    connection: String,
}

/// Builds the lab with `n_pops` PoPs (1 or 2) and runs the customer's steps; everything
/// stays up.
pub async fn up(n_pops: u32) -> Result<LabInfo> {
    up_with(n_pops, &[]).await
}

/// [`up`], with more arguments for `cic server` (quotas, as a rule).
pub async fn up_with(n_pops: u32, server_args: &[&str]) -> Result<LabInfo> {
    up_opts(n_pops, server_args, false, LAB_REPORT_EVERY).await
}

/// How often the lab's edges report, in seconds: every second, so that tests see a
/// session's state through the API soon (`cic edge`'s own default is 5).
pub const LAB_REPORT_EVERY: u64 = 1;

/// [`up_with`]; with `public`, the public services too ([`public`]): their namespace and
/// routers, the PoPs' public-services network, a public connection at each PoP. The edges
/// report every `report_every` seconds.
pub async fn up_opts(
    n_pops: u32,
    server_args: &[&str],
    public: bool,
    report_every: u64,
) -> Result<LabInfo> {
    let report_every = report_every.to_string();
    if !(1..=2).contains(&n_pops) {
        bail!("--pops {n_pops}: the lab has 1 or 2 PoPs");
    }
    check_prerequisites()?;
    if Path::new(STATE_DIR).exists()
        || !cic_dataplane::netns::list(PREFIX)
            .unwrap_or_default()
            .is_empty()
    {
        say("A previous lab is still here; removing it first.");
        down()?;
    }
    let dir = PathBuf::from(STATE_DIR);
    fs::create_dir_all(&dir)?;
    let bin = std::env::current_exe()?;
    let started = Instant::now();
    let pop_list = pops(n_pops);

    say(&format!(
        "[1/8] Building the lab in network namespaces ({n_pops} PoP{})",
        if n_pops > 1 { "s" } else { "" }
    ));
    build_topology(&pop_list)?;
    if public {
        public::build(&pop_list, &dir, &bin)?;
    }
    say("      on-prem server 192.168.10.10 ─ customer router (BIRD, AS 65001) ═ cross-connect ═");
    for p in &pop_list {
        say(&format!(
            "      PoP {} edge (cic edge) ═ cloud fabric router (BIRD, AS 200350) ─ cloud VM 10.128.0.10",
            p.id()
        ));
    }

    let (cli, ca) = start_server(&dir, &bin, server_args, public).await?;
    let server = cli.server.clone();
    let edges = register_edges(&cli, &pop_list)?;
    let customer = customer_tenant(&cli, &dir)?;
    let metrics_of = start_edges(&dir, &cli, &ca, &report_every, &edges)?;
    let services_sock = if public {
        say(
            "      Operator: the public services (Object Storage, Container Registry) and each PoP's public-services network",
        );
        Some(public::operator(&cli, &edges, &dir, &bin, &ca)?)
    } else {
        None
    };
    let (fabric_sock, site_sock) = start_routers(&dir)?;

    // The customer's steps, as they would type them (the CLI's modelled names).
    let trunk_of = create_trunks(&customer, &edges)?;
    let made = create_connections(&customer, &edges, metrics_of, &trunk_of)?;
    let ri = create_routing_instance(&customer, &made)?;

    let public_ids = if public {
        say(&format!(
            "      Operator: a public connection on each trunk for the customer, {} registered",
            public::PUBLIC_PREFIX
        ));
        let ids = public::connections(&cli, &trunk_of)?;
        fs::write(public::site_conf_path(), public::site_conf(&pop_list))?;
        ids
    } else {
        vec![]
    };

    say("[7/8] Customer: the router configured from the configuration cic generates for it");
    let lines = configure_site(&customer, true, &ri, None, &site_sock)?;
    say(&format!(
        "      ✓ the customer's BIRD runs cic's generated config ({lines} lines: BFD, 2 sessions per PoP, filters)"
    ));

    wait_for_sessions_and_routes(&customer, &made, &site_sock, &fabric_sock)?;
    if public {
        public::wait_up(&customer, &public_ids, &pop_list)?;
        say(&format!(
            "      ✓ public connections ESTABLISHED at every PoP: the customer router learned {} (Object Storage) from each; each PoP's services routers learned {} over their own PoP",
            public::OBJECT_STORAGE_PREFIX,
            public::PUBLIC_PREFIX
        ));
    }
    say(&format!(
        "      lab is up after {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let first = &made[0];
    let pops_json: Vec<Value> = made
        .iter()
        .map(|m| {
            serde_json::json!({
                "pop": m.pop.id(), "edgeId": m.edge_id, "namespace": m.pop.ns(),
                "edgeMetrics": format!("http://{}/metrics", m.edge_metrics),
                "trunkConnectionId": m.trunk, "privateConnectionId": m.connection,
                "vlan": m.pop.vlan(), "customerInterface": m.pop.customer_if(),
                "customerBgpProtocol": customer_protocol(&m.connection, Family::Ipv4),
                "customerBgpProtocol6": customer_protocol(&m.connection, Family::Ipv6),
                "crossConnect": {"namespace": m.pop.ns(), "port": "xc-site1"},
            })
        })
        .collect();
    let info = serde_json::json!({
        "server": server, "caCert": CA_CERT, "adminTokenFile": format!("{STATE_DIR}/admin-token"),
        "customerTokenFile": format!("{STATE_DIR}/customer-token"), "folderId": FOLDER,
        "routingInstanceId": ri,
        // PoP 1's, for scripts written for a one-PoP lab.
        "trunkConnectionId": first.trunk, "privateConnectionId": first.connection, "edgeId": first.edge_id,
        "edgeMetrics": format!("http://{}/metrics", first.edge_metrics),
        "pops": pops_json,
        "namespaces": {"onpremHost": NS_HOST, "customerRouter": NS_SITE, "edge": first.pop.ns(), "fabric": NS_FABRIC, "vm": NS_VM},
        "bird": {"customer": site_sock, "fabric": fabric_sock, "services": services_sock},
        "public": public.then(|| serde_json::json!({
            "publicConnectionIds": public_ids,
            "namespaces": pop_list.iter().map(|p| public::services_ns(p.0)).collect::<Vec<_>>(),
            "allowedService": {"id": public::OBJECT_STORAGE, "prefix": public::OBJECT_STORAGE_PREFIX, "http": public::OBJECT_STORAGE_HOST},
            "otherService": {"id": public::REGISTRY, "prefix": public::REGISTRY_PREFIX, "http": public::REGISTRY_HOST},
            "customerPrefix": public::PUBLIC_PREFIX, "onpremPublicAddress": public::PUBLIC_HOST,
        })),
    });
    fs::write(dir.join("lab.json"), serde_json::to_string_pretty(&info)?)?;
    Ok(LabInfo {
        server,
        connection_id: first.connection.clone(),
        site_bird: site_sock,
        fabric_bird: fabric_sock,
    })
}

/// Step 2: the CA and `cic server` with TLS, edges known by their certificates; waits
/// until it answers. The admin's CLI, and the CA's certificate.
async fn start_server(
    dir: &Path,
    bin: &Path,
    server_args: &[&str],
    public: bool,
) -> Result<(Cli, String)> {
    let port = free_port()?;
    let server = format!("https://127.0.0.1:{port}");
    let token = random_token()?;
    // The lab runs what an operator deploys: TLS, and edges known by their certificates,
    // from a CA of its own.
    let pki = format!("{STATE_DIR}/pki");
    let out = Command::new(bin)
        .args([
            "pki",
            "init",
            "--dir",
            &pki,
            "--name",
            "127.0.0.1",
            "--days",
            "30",
        ])
        .output()
        .context("cic pki init")?;
    if !out.status.success() {
        bail!(
            "cic pki init: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let ca = format!("{pki}/ca.crt");
    say(&format!(
        "[2/8] Starting cic server on {server} (TLS; edges by certificate; CA {ca}; SQLite {STATE_DIR}/cic.db)"
    ));
    let db = format!("sqlite://{STATE_DIR}/cic.db");
    let listen = format!("127.0.0.1:{port}");
    let (cert, key, ca_key) = (
        format!("{pki}/server.crt"),
        format!("{pki}/server.key"),
        format!("{pki}/ca.key"),
    );
    let polls = api::LONG_POLLS.to_string();
    let mut args = vec![
        "server",
        "--listen",
        &listen,
        "--max-long-polls",
        &polls,
        "--database",
        &db,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--client-ca",
        &ca,
        "--client-ca-key",
        &ca_key,
    ];
    args.extend_from_slice(server_args);
    if public {
        args.extend(["--treat-as-public", public::LAB_PUBLIC_SPACE]);
    }
    spawn(
        dir,
        "server",
        bin,
        &args,
        &[("CIC_ADMIN_TOKEN", &token), ("RUST_LOG", &daemon_log())],
    )?;
    fs::write(dir.join("server"), &server)?;
    fs::write(dir.join("admin-token"), &token)?;
    let http = lab_client(&server, &ca)?;
    let health = format!("{server}/healthz");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if http
            .get(&health)
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("cic server did not answer on {server}; see {STATE_DIR}/server.log");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cli = Cli {
        bin: bin.to_path_buf(),
        server,
        token,
    };
    Ok((cli, ca))
}

/// Step 3: each PoP and its edge router, registered by the operator (the edge's
/// certificate written for its agent). The edges' ids.
fn register_edges(cli: &Cli, pop_list: &[Pop]) -> Result<Vec<(Pop, String)>> {
    say("[3/8] Operator: the points of presence, their edge routers, the cloud fabric");
    let mut edges = Vec::new();
    for p in pop_list {
        let (id, pns) = (p.id(), p.ns());
        cli.run(
            true,
            &[
                "pop",
                "create",
                "--id",
                &id,
                "--name",
                &format!("PoP {}", p.0),
                "--address",
                &format!("lab, network namespace {pns}"),
            ],
        )?;
        let reg = cli.run(
            true,
            &[
                "edge-router",
                "create",
                "--name",
                &format!("{id}-edge1"),
                "--pop",
                &id,
                "--router-id",
                &format!("10.255.0.{}", p.0),
                "--fabric-remote-vtep",
                &p.fab(2),
                "--fabric-local-vtep",
                &p.fab(1),
                "--fabric-port",
                "fab0",
                "--fabric-transit-pool",
                // A /19 each: 4,096 /31s, room for the scale benchmark's instances.
                &format!("100.127.{}.0/19", (p.0 - 1) * 32),
                "--fabric-vni-base",
                &(100_000 * p.0).to_string(),
                "--certificate-out",
                &format!("{STATE_DIR}/edge-{id}-pki"),
            ],
        )?;
        // The edge's certificate is in --certificate-out; its token (shown once) is not
        // needed: the server takes edges by certificate.
        if reg["credentials"]["serialNumber"].as_str().is_none() {
            bail!("no certificate issued for the edge of {id}: {reg}");
        }
        let edge_id = reg["edge"]["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no edge id"))?
            .to_string();
        edges.push((*p, edge_id));
    }
    Ok(edges)
}

/// The customer as a tenant: its own folder, an editor there, and nothing else. Its CLI.
fn customer_tenant(cli: &Cli, dir: &Path) -> Result<Cli> {
    // The customer is a tenant: its own folder, an editor there, and nothing else.
    cli.run(
        true,
        &["folder", "create", "--id", FOLDER, "--name", "customer"],
    )?;
    cli.run(
        true,
        &[
            "folder",
            "add-access-binding",
            FOLDER,
            "--role",
            "editor",
            "--subject",
            "customer",
        ],
    )?;
    let key = cli.run(true, &["api-key", "create", "--subject", "customer"])?;
    let customer_token = key["secret"]
        .as_str()
        .ok_or_else(|| anyhow!("no API key secret in {key}"))?
        .to_string();
    fs::write(dir.join("customer-token"), &customer_token)?;
    Ok(Cli {
        bin: cli.bin.clone(),
        server: cli.server.clone(),
        token: customer_token,
    })
}

/// An edge agent and the fabric automation for each PoP's edge. Each agent's metrics
/// address.
fn start_edges(
    dir: &Path,
    cli: &Cli,
    ca: &str,
    report_every: &str,
    edges: &[(Pop, String)],
) -> Result<Vec<String>> {
    let (bin, server, token) = (&cli.bin, &cli.server, &cli.token);
    let mut metrics_of = Vec::new();
    for (p, edge_id) in edges {
        let edge_metrics = format!("127.0.0.1:{}", free_port()?);
        let (pns, prefix) = (p.ns(), format!("{}-", p.ns()));
        spawn(
            dir,
            &format!("edge-{}", p.id()),
            bin,
            &[
                "edge",
                "--server",
                server,
                "--netns",
                &pns,
                "--netns-prefix",
                &prefix,
                "--report-every",
                report_every,
                "--metrics-listen",
                &edge_metrics,
                "--state-dir",
                &format!("{STATE_DIR}/edge-{}", p.id()),
                "--tls-cert",
                &format!("{STATE_DIR}/edge-{}-pki/edge.crt", p.id()),
                "--tls-key",
                &format!("{STATE_DIR}/edge-{}-pki/edge.key", p.id()),
            ],
            &[("CIC_CA_CERT", ca), ("RUST_LOG", &daemon_log())],
        )?;
        spawn(
            dir,
            &format!("fabric-automation-{}", p.id()),
            bin,
            &[
                "lab",
                "fabric",
                "--server",
                server,
                "--edge-id",
                edge_id,
                "--netns",
                NS_FABRIC,
                "--underlay-dev",
                &p.id(),
            ],
            &[
                ("CIC_TOKEN", token),
                ("CIC_CA_CERT", ca),
                ("RUST_LOG", &daemon_log()),
            ],
        )?;
        metrics_of.push(edge_metrics);
    }
    Ok(metrics_of)
}

/// The fabric's BIRD and the customer's, the customer's with its own part only (its LAN,
/// its kernel): the BGP part comes from cic once the connections exist (step 7). Their
/// control sockets.
fn start_routers(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let fabric = Bird::start("fabric", &fabric_bird_conf(), Some(NS_FABRIC), Some(dir))?;
    let fabric_sock = fabric.socket();
    if let Some(pid) = fabric.detach() {
        record_pid(dir, "bird-fabric", pid)?;
    }
    // The customer's router starts with its own part only (its LAN, its kernel); the
    // BGP part comes from cic once the connections exist (step 7).
    let site = Bird::start("site", &site_preamble(), Some(NS_SITE), Some(dir))?;
    let site_sock = site.socket();
    if let Some(pid) = site.detach() {
        record_pid(dir, "bird-site", pid)?;
    }
    say("      cic edge started at each PoP; customer router and fabric router (BIRD) started");

    Ok((fabric_sock, site_sock))
}

/// Step 4: a trunk at each PoP. Each PoP's trunk.
fn create_trunks(customer: &Cli, edges: &[(Pop, String)]) -> Result<Vec<(Pop, String)>> {
    say("[4/8] Customer: a trunk at each PoP (a VXLAN overlay trunk: this kernel has no 802.1Q)");
    let mut trunk_of = Vec::new();
    for (p, _) in edges {
        let (op, took) = timed(|| {
            customer.run(
                true,
                &[
                    "trunk-connection",
                    "create",
                    "--folder-id",
                    FOLDER,
                    "--name",
                    &format!("site1-{}", p.id()),
                    "--point-of-presence-id",
                    &p.id(),
                    "--capacity",
                    "1g",
                    "--overlay-remote-vtep",
                    &p.xc(2),
                    "--port",
                    "xc-site1",
                ],
            )
        })?;
        let trunk = id_of(&op, "trunk")?;
        say(&format!(
            "      ✓ trunk {trunk} at {} ACTIVE, applied by the edge in {:.2} s",
            p.id(),
            took.as_secs_f64()
        ));
        trunk_of.push((*p, trunk.clone()));
    }
    Ok(trunk_of)
}

/// Step 5: a dual-stack private connection on each trunk.
fn create_connections(
    customer: &Cli,
    edges: &[(Pop, String)],
    metrics_of: Vec<String>,
    trunk_of: &[(Pop, String)],
) -> Result<Vec<PopMade>> {
    say(
        "[5/8] Customer: a private connection on each trunk, dual stack: a BGP session per family, AS 65001 ↔ 200350",
    );
    let mut made: Vec<PopMade> = Vec::new();
    for (((p, edge_id), edge_metrics), (_, trunk)) in edges.iter().zip(metrics_of).zip(trunk_of) {
        let subnet = format!("169.254.{}.0/30", p.vlan());
        let peering = format!(
            "peering-subnet={subnet},peer-ip={},cloud-ip={},peer-bgp-asn=65001",
            p.peering(2),
            p.peering(1)
        );
        let subnet6 = format!("fd00:a9fe:{}::/126", p.vlan());
        let peering6 = format!(
            "peering-subnet={subnet6},peer-ip={},cloud-ip={},peer-bgp-asn=65001",
            p.peering6(2),
            p.peering6(1)
        );
        let (op, took) = timed(|| {
            customer.run(
                true,
                &[
                    "private-connection",
                    "create",
                    "--folder-id",
                    FOLDER,
                    "--name",
                    &format!("site1-vlan{}", p.vlan()),
                    "--trunk-id",
                    trunk,
                    "--vlan-id",
                    &p.vlan().to_string(),
                    "--ipv4-peering",
                    &peering,
                    "--ipv6-peering",
                    &peering6,
                ],
            )
        })?;
        let connection = id_of(&op, "connection")?;
        say(&format!(
            "      ✓ private connection {connection} at {} (VLAN {}, {subnet} and {subnet6}) ACTIVE in {:.2} s",
            p.id(),
            p.vlan(),
            took.as_secs_f64()
        ));
        made.push(PopMade {
            pop: *p,
            edge_id: edge_id.clone(),
            edge_metrics,
            trunk: trunk.clone(),
            connection,
        });
    }

    Ok(made)
}

/// Step 6: a routing instance joining every connection to the VPC. Its id.
fn create_routing_instance(customer: &Cli, made: &[PopMade]) -> Result<String> {
    say(&format!(
        "[6/8] Customer: a routing instance joining them to VPC vpc-demo (10.128.0.0/24, {VPC6})"
    ));
    let zone6 = format!("zone-a={VPC6}");
    let mut args = vec![
        "routing-instance",
        "create",
        "--folder-id",
        FOLDER,
        "--name",
        "demo-router",
        "--vpc",
        "vpc-demo",
        "--prefix",
        "zone-a=10.128.0.0/24",
        "--prefix",
        &zone6,
    ];
    for m in made {
        args.extend(["--connection", m.connection.as_str()]);
    }
    let (op, took) = timed(|| customer.run(true, &args))?;
    let ri = id_of(&op, "routing instance")?;
    say(&format!(
        "      ✓ routing instance {ri} ACTIVE in {:.2} s",
        took.as_secs_f64()
    ));

    Ok(ri)
}

/// Step 8: both sessions Established at every PoP, each side's routes in BIRD and in the
/// kernel over every PoP, and the edges' reports showing prefixes and BFD Up.
fn wait_for_sessions_and_routes(
    customer: &Cli,
    made: &[PopMade],
    site_sock: &Path,
    fabric_sock: &Path,
) -> Result<()> {
    say("[8/8] Waiting for BGP, BFD and routes");
    let t = Instant::now();
    let mut last = Value::Null;
    for m in made {
        last = wait_until(
            WAIT,
            &format!("both BGP sessions at {} to be ESTABLISHED", m.pop.id()),
            || {
                let v = customer
                    .run(false, &["private-connection", "get", &m.connection])
                    .ok()?;
                (v["bgp"]["state"] == "ESTABLISHED" && v["bgpIpv6"]["state"] == "ESTABLISHED")
                    .then_some(v)
            },
        )
        .map_err(|e| anyhow!("{e}; see {STATE_DIR}/edge-{}.log", m.pop.id()))?;
    }
    say(&format!(
        "      ✓ BGP with the customer router ESTABLISHED at every PoP, IPv4 and IPv6, after {:.2} s (seen through the API)",
        t.elapsed().as_secs_f64()
    ));
    let site_bird = BirdCtl(site_sock.to_path_buf());
    let fabric_bird = BirdCtl(fabric_sock.to_path_buf());
    wait_until(WAIT, "the customer router to learn 10.128.0.0/24", || {
        site_bird
            .route("10.128.0.0/24")
            .filter(|r| r.contains("200350"))
    })
    .map_err(|e| anyhow!("{e}"))?;
    wait_until(WAIT, "the fabric to learn 192.168.10.0/24", || {
        fabric_bird.route("192.168.10.0/24")
    })
    .map_err(|e| anyhow!("{e}"))?;
    wait_until(
        WAIT,
        &format!("the customer router to learn {VPC6}"),
        || site_bird.route(VPC6).filter(|r| r.contains("200350")),
    )
    .map_err(|e| anyhow!("{e}"))?;
    wait_until(WAIT, &format!("the fabric to learn {LAN6}"), || {
        fabric_bird.route(LAN6)
    })
    .map_err(|e| anyhow!("{e}"))?;
    // Each router's kernel uses every PoP: as many next hops as PoPs (ECMP).
    for (n, prefix) in [
        (NS_SITE, "10.128.0.0/24"),
        (NS_FABRIC, "192.168.10.0/24"),
        (NS_SITE, VPC6),
        (NS_FABRIC, LAN6),
    ] {
        wait_until(WAIT, &format!("{prefix} over every PoP in {n}"), || {
            (kernel_next_hops(n, prefix) >= made.len()).then_some(())
        })
        .map_err(|e| anyhow!("{e}"))?;
    }
    // The edges report every second: wait until the API shows what the routers show.
    for m in made {
        last = wait_until(
            WAIT,
            &format!("the edge at {} to report prefixes and BFD Up", m.pop.id()),
            || {
                let v = customer
                    .run(false, &["private-connection", "get", &m.connection])
                    .ok()?;
                let ok = |b: &Value| {
                    b["prefixesAccepted"].as_u64() >= Some(1)
                        && b["prefixesAdvertised"].as_u64() >= Some(1)
                        && b["bfd"]["state"] == "UP"
                };
                (ok(&v["bgp"]) && ok(&v["bgpIpv6"])).then_some(v)
            },
        )
        .unwrap_or(last);
    }
    say(&format!(
        "      ✓ customer router learned 10.128.0.0/24 and {VPC6} from AS 200350 via {} PoP(s); cloud fabric learned 192.168.10.0/24 and {LAN6} via the edges",
        made.len()
    ));
    for (family, b) in [("IPv4", &last["bgp"]), ("IPv6", &last["bgpIpv6"])] {
        say(&format!(
            "      ✓ {family} session: prefixes received {} / accepted {} / advertised {}; BFD {} (detection {} ms)",
            b["prefixesReceived"],
            b["prefixesAccepted"],
            b["prefixesAdvertised"],
            b["bfd"]["state"],
            b["bfd"]["detectionTimeMs"]
        ));
    }
    Ok(())
}
