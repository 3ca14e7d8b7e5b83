//! The console in a real browser: Debian's headless Chromium driven through WebDriver
//! (chromedriver) against a real `cic server` listening on loopback, with a real store.
//! The edge's part (its reports, its looking-glass answers) is played through the edge
//! sync API, as an edge speaks it; the lab's test drives the console against real edges.
//!
//! Without chromium and chromedriver these tests are skipped, unless
//! `CIC_REQUIRE_BROWSER=1` (as in CI), where that is a failure. Screenshots of the main
//! pages are written to `target/console-screenshots/`, and to `docs/console/` with
//! `CIC_UPDATE_SCREENSHOTS=1` (the README shows those).

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use browser::*;
use common::*;
use fantoccini::Locator;
use serde_json::{Value, json};

/// The server of `h` on a loopback port; returns its base URL.
async fn serve(h: &H) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = h.app.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// The edge reports its applied revision and the sessions given (as an edge does), and
/// each connection's counters, a megabyte more each report.
async fn report(h: &H, edge_token: &str, sessions: Value) {
    static BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let bytes = BYTES.fetch_add(1_000_000, std::sync::atomic::Ordering::Relaxed);
    let traffic: Vec<Value> = sessions
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            json!({"resourceId": s["resourceId"], "bytesToCloud": bytes,
                        "bytesFromCloud": bytes / 2, "packetsToCloud": bytes / 1000,
                        "packetsFromCloud": bytes / 2000})
        })
        .collect();
    let rev = h.revision().await;
    let (s, v) = h
        .call(
            Method::PUT,
            "/cic/v1/edgeSync/status",
            Some(edge_token),
            Some(json!({"appliedRevision": rev, "dataplane": "vxlan-overlay",
                        "sessions": sessions, "errors": [], "traffic": traffic})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

fn session(pc: &str, state: &str) -> Value {
    json!({"resourceId": pc, "kind": "customer", "peer": "169.254.100.2", "peerAsn": 65001,
           "state": state, "uptimeSecs": if state == "ESTABLISHED" { 3725 } else { 0 },
           "prefixesReceived": 3, "prefixesAccepted": 2, "prefixesAdvertised": 5,
           "bfd": {"state": if state == "ESTABLISHED" { "up" } else { "down" }}})
}

/// A folder with a trunk and a connection whose session the edge reports ESTABLISHED.
async fn world() -> (Arc<H>, String, String, String) {
    let h = H::new().await;
    let (edge_token, trunk, pc) = h.one_connection().await;
    report(&h, &edge_token, json!([session(&pc, "ESTABLISHED")])).await;
    (Arc::new(h), edge_token, trunk, pc)
}

#[tokio::test]
async fn a_customer_signs_in_sees_live_state_and_manages_connections() {
    let Some(br) = browser("console customer", 1280, 800).await else {
        return;
    };
    let b = &br.client;
    let (h, edge_token, trunk, pc) = world().await;
    let key = h.user("alice", "f1", "editor").await;
    let base = serve(&h).await;

    // A wrong key is refused on the sign-in page, in words.
    b.goto(&format!("{base}/console/signin"))
        .await
        .expect("goto");
    b.find(Locator::Id("key"))
        .await
        .expect("key")
        .send_keys("not-a-key")
        .await
        .expect("type");
    b.find(Locator::Css("form button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("submit");
    assert!(
        text_of(b, "#signin-error").await.contains("not accepted"),
        "a wrong key is named"
    );
    screenshot(b, "signin").await;

    sign_in(b, &base, &key).await;
    let home = body_text(b).await;
    assert!(home.contains("folder-f1"), "{home}");
    assert!(
        !home.contains("folder-f2"),
        "a folder without a role does not exist: {home}"
    );

    // The folder: the connection ESTABLISHED, its prefixes, the topology drawn from it.
    b.find(Locator::LinkText("folder-f1"))
        .await
        .expect("folder link")
        .click()
        .await
        .expect("open folder");
    let row = format!("tr[data-id='{pc}']");
    wait_for_text(b, &format!("{row} td.bgp"), "ESTABLISHED").await;
    assert!(text_of(b, &row).await.contains("3 / 2 / 5"));
    let svg = b
        .find(Locator::Css("figure.topology svg"))
        .await
        .expect("topology")
        .html(false)
        .await
        .expect("svg");
    assert!(
        svg.contains("link ok"),
        "the connection's link is drawn up: {svg}"
    );
    assert!(svg.contains("pop1") && svg.contains(&trunk));
    screenshot(b, "folder").await;

    // Live: the edge reports the session down; the page shows it without a reload.
    b.execute("window.__marker = 1;", vec![])
        .await
        .expect("mark the page");
    report(&h, &edge_token, json!([session(&pc, "ACTIVE")])).await;
    wait_for_text(b, &format!("{row} td.bgp"), "ACTIVE").await;
    let same_page = b
        .execute("return window.__marker === 1;", vec![])
        .await
        .expect("marker");
    assert_eq!(same_page, json!(true), "updated in place, not reloaded");
    let svg = text_or_html(b, "figure.topology svg").await;
    assert!(svg.contains("link bad"), "the link turned red: {svg}");
    report(&h, &edge_token, json!([session(&pc, "ESTABLISHED")])).await;
    report(&h, &edge_token, json!([session(&pc, "ESTABLISHED")])).await;

    // The connection's page and its looking glass (the edge answers the question).
    b.goto(&format!("{base}/console/privateConnections/{pc}"))
        .await
        .expect("connection page");
    wait_for_text(b, "#session-ipv4 td.bgp", "ESTABLISHED").await;
    assert!(text_of(b, "#session-ipv4").await.contains("1 h 2 min"));
    // Its graphs: the session's state over time with the drop above, the event with
    // its reason, traffic both ways from the edge's counters.
    let state = text_or_html(b, "#chart-bgp-state svg").await;
    assert!(
        state.contains("band bad") && state.contains("band ok"),
        "{state}"
    );
    assert!(state.contains("mark session-down"), "{state}");
    assert!(text_of(b, "#events").await.contains("BGP session down"));
    let bits = text_or_html(b, "#chart-bits svg").await;
    assert_eq!(bits.matches("d=\"M").count(), 2, "both ways: {bits}");
    assert!(
        text_of(b, "#chart-bits figcaption")
            .await
            .contains("to the cloud")
    );
    screenshot(b, "connection").await;
    let q = answer_one_question(h.clone(), edge_token.clone(), |_| {
        json!([{"prefix": "10.10.0.0/16", "nextHop": "169.254.100.2", "asPath": [65001],
                "origin": "IGP"},
               {"prefix": "10.0.0.0/8", "nextHop": "169.254.100.2", "asPath": [65001],
                "origin": "IGP", "rejected": "covers a VPC prefix"}])
    });
    b.find(Locator::Css("a[href$='/routes']"))
        .await
        .expect("looking glass link")
        .click()
        .await
        .expect("open looking glass");
    let routes = text_of(b, "#routes").await;
    assert!(
        routes.contains("10.10.0.0/16") && routes.contains("covers a VPC prefix"),
        "{routes}"
    );
    assert_eq!(q.await.expect("question")["direction"], "received");
    screenshot(b, "looking-glass").await;

    // A connection with a wrong VLAN: the API's error beside the field, nothing made.
    let before = h.count("/cic/v1/privateConnections?folderId=f1").await;
    b.goto(&format!("{base}/console/folders/f1/privateConnections/new"))
        .await
        .expect("form");
    fill(
        b,
        &[
            ("f-name", "second"),
            ("f-vlanId", "5000"),
            ("f-ipv4Peering-peeringSubnet", "169.254.101.0/30"),
            ("f-ipv4Peering-peerIp", "169.254.101.2"),
            ("f-ipv4Peering-cloudIp", "169.254.101.1"),
            ("f-ipv4Peering-peerBgpAsn", "65001"),
        ],
    )
    .await;
    submit(b).await;
    let err = text_of(b, ".field-error[data-field='vlanId']").await;
    assert!(
        err.contains("2-4000"),
        "the VLAN's rule is shown at the field: {err}"
    );
    assert_eq!(
        b.find(Locator::Id("f-vlanId"))
            .await
            .expect("vlan")
            .attr("aria-invalid")
            .await
            .expect("attr")
            .as_deref(),
        Some("true")
    );
    assert_eq!(
        b.find(Locator::Id("f-name"))
            .await
            .expect("name")
            .prop("value")
            .await
            .expect("value")
            .as_deref(),
        Some("second"),
        "what was typed is kept"
    );
    assert_eq!(
        h.count("/cic/v1/privateConnections?folderId=f1").await,
        before
    );
    screenshot(b, "form-error").await;

    // Corrected: the operation's page follows it until the edge has applied it.
    let vlan = b.find(Locator::Id("f-vlanId")).await.expect("vlan");
    vlan.clear().await.expect("clear");
    vlan.send_keys("200").await.expect("type");
    submit(b).await;
    wait_for_text(b, "#op-state", "in progress").await;
    assert_eq!(
        h.count("/cic/v1/privateConnections?folderId=f1").await,
        before + 1
    );
    report(&h, &edge_token, json!([session(&pc, "ESTABLISHED")])).await;
    wait_for_text(b, "#op-state", "done").await;
    click(b, "op-resource").await;
    wait_for_text(b, "#status", "ACTIVE").await;

    // A failover test, started and stopped from the page.
    b.goto(&format!("{base}/console/privateConnections/{pc}"))
        .await
        .expect("connection page");
    click(b, "start-test").await;
    wait_for_text(b, "#failover-tests", "IN_PROGRESS").await;
    wait_for_text(b, "#events", "failover test started by alice").await;
    screenshot(b, "failover-test").await;
    click(b, "stop-test").await;
    wait_for_text(b, "#failover-tests", "STOPPED").await;
    assert!(b.find(Locator::Id("start-test")).await.is_ok());

    // Its BFD timers from the edit form: one below the operator's minimum refused at its
    // field, then 100 ms × 3 taken.
    b.goto(&format!("{base}/console/privateConnections/{pc}/edit"))
        .await
        .expect("edit");
    assert_eq!(
        b.find(Locator::Id("f-vlanId"))
            .await
            .expect("vlan")
            .prop("value")
            .await
            .expect("value")
            .as_deref(),
        Some("100"),
        "the form starts from the connection"
    );
    fill(
        b,
        &[("f-bfd-minIntervalMs", "10"), ("f-bfd-multiplier", "3")],
    )
    .await;
    submit(b).await;
    let err = text_of(b, ".field-error[data-field='bfd.minIntervalMs']").await;
    assert!(err.contains("50"), "the operator's minimum named: {err}");
    let interval = b
        .find(Locator::Id("f-bfd-minIntervalMs"))
        .await
        .expect("interval");
    interval.clear().await.expect("clear");
    interval.send_keys("100").await.expect("type");
    submit(b).await;
    wait_for_text(b, "h1", "Update private connection").await;

    let got = h
        .admin(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pc}"),
            None,
        )
        .await
        .1;
    assert_eq!(
        got["bfd"],
        json!({"minIntervalMs": 100, "multiplier": 3}),
        "{got}"
    );
    assert_eq!(got["vlanId"], "100", "the VLAN as it was");

    // A trunk and a routing instance from their forms; the instance's bad prefix shown at
    // its field first.
    b.goto(&format!("{base}/console/folders/f1/trunkConnections/new"))
        .await
        .expect("trunk form");
    fill(
        b,
        &[
            ("f-name", "site2"),
            ("f-overlayJoint-remoteVtep", "100.64.1.3"),
        ],
    )
    .await;
    choose(b, "f-capacity", "CAPACITY_10_GBPS").await;
    submit(b).await;
    wait_for_text(b, "#op-state", "in progress").await;
    let trunks = h
        .admin(Method::GET, "/cic/v1/trunkConnections?folderId=f1", None)
        .await
        .1;
    assert!(
        trunks["trunkConnections"].as_array().is_some_and(|a| a
            .iter()
            .any(|t| t["name"] == "site2" && t["capacity"] == "CAPACITY_10_GBPS")),
        "{trunks}"
    );
    b.goto(&format!("{base}/console/folders/f1/routingInstances/new"))
        .await
        .expect("instance form");
    fill(
        b,
        &[
            ("f-name", "cloud-router"),
            ("f-vpcInfo-0--vpcNetworkId", "net1"),
            ("f-vpcInfo-0--azInfos-0--azId", "zone-a"),
            ("f-vpcInfo-0--azInfos-0--prefixes", "10.10.0.0/33"),
        ],
    )
    .await;
    submit(b).await;
    let err = text_of(
        b,
        ".field-error[data-field='vpcInfo[0].azInfos[0].prefixes']",
    )
    .await;
    assert!(
        err.contains("must be a prefix"),
        "the prefix's rule at its field: {err}"
    );
    let prefixes = b
        .find(Locator::Id("f-vpcInfo-0--azInfos-0--prefixes"))
        .await
        .expect("prefixes");
    prefixes.clear().await.expect("clear");
    prefixes
        .send_keys("10.10.0.0/16, 10.11.0.0/16")
        .await
        .expect("type");
    choose(
        b,
        "f-cicPrivateConnectionInfo-0--cicPrivateConnectionId",
        &pc,
    )
    .await;
    submit(b).await;
    wait_for_text(b, "#op-state", "in progress").await;
    let ri = h
        .admin(
            Method::GET,
            &format!("/cloudrouter/v1/routingInstances:getByCicPrivateConnectionId/{pc}"),
            None,
        )
        .await
        .1;
    assert_eq!(ri["name"], "cloud-router", "{ri}");
    assert_eq!(
        ri["vpcInfo"][0]["azInfos"][0]["manualInfo"]["prefixes"],
        json!(["10.10.0.0/16", "10.11.0.0/16"])
    );
    screenshot(b, "operation").await;
    let ri_id = ri["id"].as_str().expect("id").to_string();
    // A prefix added from its page, and its description edited.
    b.goto(&format!("{base}/console/routingInstances/{ri_id}"))
        .await
        .expect("instance page");
    click(b, "prefixes").await;
    fill(
        b,
        &[
            ("f-vpcAzInfoPrefixes-0--azId", "zone-a"),
            ("f-vpcAzInfoPrefixes-0--prefixes", "10.12.0.0/16"),
        ],
    )
    .await;
    submit(b).await;
    wait_for_text(b, "#op-state", "in progress").await;
    b.goto(&format!("{base}/console/routingInstances/{ri_id}/edit"))
        .await
        .expect("edit");
    fill(b, &[("f-description", "our cloud router")]).await;
    submit(b).await;
    // (done at once: a description is nothing an edge applies)
    wait_for_text(b, "#op-state", "done").await;
    let ri = h
        .admin(
            Method::GET,
            &format!("/cloudrouter/v1/routingInstances/{ri_id}"),
            None,
        )
        .await
        .1;
    assert_eq!(ri["description"], "our cloud router", "{ri}");
    assert!(
        ri["vpcInfo"][0]["azInfos"][0]["manualInfo"]["prefixes"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x == "10.12.0.0/16")),
        "{ri}"
    );
    // Deleted from its page.
    b.goto(&format!(
        "{base}/console/routingInstances/{}",
        ri["id"].as_str().expect("id")
    ))
    .await
    .expect("instance page");
    click(b, "delete").await;
    // Asked first, on a page of its own.
    wait_for_text(b, "h1", "Delete cloud-router?").await;
    click(b, "confirm").await;
    wait_for_text(b, "#op-state", "in progress").await;
    let (s, _) = h
        .admin(
            Method::GET,
            &format!(
                "/cloudrouter/v1/routingInstances/{}",
                ri["id"].as_str().expect("id")
            ),
            None,
        )
        .await;
    assert!(s == StatusCode::OK || s == StatusCode::NOT_FOUND);

    // Sign-out ends the session on the server: its cookie no longer opens a page.
    let cookie = b
        .get_named_cookie("cic_console")
        .await
        .expect("session cookie")
        .value()
        .to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http");
    let with_cookie = |path: &str| {
        http.get(format!("{base}{path}"))
            .header("cookie", format!("cic_console={cookie}"))
    };
    let r = with_cookie("/console/").send().await.expect("get");
    assert_eq!(r.status(), 200, "the cookie works while signed in");
    sign_out(b).await;
    assert!(
        b.current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/signin")
    );
    let r = with_cookie("/console/").send().await.expect("get");
    assert_eq!(r.status(), 303, "signed out: back to sign-in");
}

#[tokio::test]
async fn viewers_see_no_edit_buttons_and_forged_or_foreign_requests_are_refused() {
    let Some(br) = browser("console viewer", 390, 844).await else {
        return;
    };
    let b = &br.client;
    let (h, _edge_token, _trunk, pc) = world().await;
    let viewer = h.user("victor", "f1", "viewer").await;
    let editor = h.user("erin", "f1", "editor").await;
    // Another tenant's connection, in f2.
    let op = h
        .ok(
            Method::POST,
            "/cic/v1/trunkConnections",
            json!({"folderId": "f2", "pointOfPresenceId": "pop1", "capacity": "CAPACITY_1_GBPS",
                   "overlayJoint": {"remoteVtep": "100.64.1.9"}}),
        )
        .await;
    let foreign_trunk = resource_id(&op);
    let base = serve(&h).await;

    // A viewer (on a phone-sized window) reads but is offered no change.
    sign_in(b, &base, &viewer).await;
    b.goto(&format!("{base}/console/folders/f1"))
        .await
        .expect("folder");
    wait_for_text(b, &format!("tr[data-id='{pc}'] td.bgp"), "ESTABLISHED").await;
    assert!(
        b.find(Locator::LinkText("New private connection"))
            .await
            .is_err(),
        "no create button for a viewer"
    );
    screenshot(b, "folder-phone").await;
    b.goto(&format!("{base}/console/privateConnections/{pc}"))
        .await
        .expect("connection");
    wait_for_text(b, "#session-ipv4 td.bgp", "ESTABLISHED").await;
    for id in ["start-test", "delete"] {
        assert!(
            b.find(Locator::Id(id)).await.is_err(),
            "no {id} for a viewer"
        );
    }
    // Another tenant's ids are pages that do not exist.
    for path in [
        format!("/console/trunkConnections/{foreign_trunk}"),
        "/console/folders/f2".to_string(),
    ] {
        b.goto(&format!("{base}{path}")).await.expect("goto");
        assert!(text_of(b, "h1").await.contains("Not found"), "{path}");
    }
    screenshot(b, "not-found").await;

    // A form posted without this session's CSRF token is refused and changes nothing, even
    // for an editor; so is one a browser says came from another site.
    sign_out(b).await;
    sign_in(b, &base, &editor).await;
    let cookie = b
        .get_named_cookie("cic_console")
        .await
        .expect("cookie")
        .value()
        .to_string();
    b.goto(&format!("{base}/console/privateConnections/{pc}"))
        .await
        .expect("connection");
    let csrf = b
        .find(Locator::Css("form input[name=_csrf]"))
        .await
        .expect("csrf field")
        .attr("value")
        .await
        .expect("value")
        .expect("a token");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http");
    let post = |token: &str, origin: Option<&str>| {
        let mut r = http
            .post(format!("{base}/console/privateConnections/{pc}/delete"))
            .header("cookie", format!("cic_console={cookie}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("_csrf={token}"));
        if let Some(o) = origin {
            r = r.header("origin", o).header("sec-fetch-site", "cross-site");
        }
        r.send()
    };
    let rev = h.revision().await;
    for (what, token, origin) in [
        ("no token", "", None),
        ("another token", &"0".repeat(64)[..], None),
        (
            "from another site",
            csrf.as_str(),
            Some("https://evil.example"),
        ),
    ] {
        let r = post(token, origin).await.expect("post");
        assert_eq!(r.status(), 403, "{what}");
        assert!(
            r.text().await.unwrap_or_default().contains("Form refused"),
            "{what}"
        );
        assert_eq!(h.revision().await, rev, "{what}: nothing changed");
    }
    // The same form from the page itself goes through.
    let r = post(&csrf, None).await.expect("post");
    assert_eq!(r.status(), 303, "the console's own form is taken");
    assert!(h.revision().await > rev);

    // The session cookie: HttpOnly, SameSite=Strict, for the console only.
    let c = b.get_named_cookie("cic_console").await.expect("cookie");
    assert_eq!(c.http_only(), Some(true));
    assert_eq!(c.path(), Some("/console"));
    assert_eq!(format!("{:?}", c.same_site()), "Some(Strict)");
}

#[tokio::test]
async fn the_operator_sees_every_edge_with_its_report() {
    let Some(br) = browser("console operator", 1280, 800).await else {
        return;
    };
    let b = &br.client;
    let (h, edge_token, trunk, pc) = world().await;
    h.pop_and_edge("pop2", "edge2", "100.64.255.3").await;
    let base = serve(&h).await;
    sign_in(b, &base, ADMIN).await;
    b.find(Locator::LinkText("Operator"))
        .await
        .expect("operator link")
        .click()
        .await
        .expect("open");
    let edges = text_of(b, "#edges").await;
    assert!(
        edges.contains("never reported"),
        "edge2 has not reported: {edges}"
    );
    assert!(
        edges.contains("1 / 1"),
        "edge1's one session is up: {edges}"
    );
    screenshot(b, "operator").await;

    // A public connection's page: its session, services and prefixes, a failover test.
    let pu = h.public_connection(&trunk).await;
    report(
        &h,
        &edge_token,
        json!([session(&pc, "ESTABLISHED"), session(&pu, "ESTABLISHED")]),
    )
    .await;
    b.goto(&format!("{base}/console/publicConnections/{pu}"))
        .await
        .expect("public connection");
    wait_for_text(b, "#session-ipv4 td.bgp", "ESTABLISHED").await;
    let facts = text_of(b, "dl.facts").await;
    assert!(
        facts.contains("CLOUD_SERVICE_S3") && facts.contains("5.45.192.0/22"),
        "{facts}"
    );
    assert!(
        b.find(Locator::Css(&format!(
            "a[href='/console/publicConnections/{pu}/routes']"
        )))
        .await
        .is_ok(),
        "its looking glass"
    );
    click(b, "start-test").await;
    wait_for_text(b, "#failover-tests", "IN_PROGRESS").await;

    // The operator drains the edge: an event on its connections' graphs.
    let edges = h.admin(Method::GET, "/cic/v1/edges", None).await.1;
    let edge_id = edges["edges"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "edge1"))
        .and_then(|e| e["id"].as_str())
        .expect("edge1")
        .to_string();
    let (s, v) = h
        .admin(
            Method::POST,
            &format!("/cic/v1/edges/{edge_id}:drain"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    report(
        &h,
        &edge_token,
        json!([session(&pc, "ESTABLISHED"), session(&pu, "ESTABLISHED")]),
    )
    .await;
    b.goto(&format!("{base}/console/privateConnections/{pc}"))
        .await
        .expect("connection");
    wait_for_text(b, "#events", "drained for maintenance").await;
    assert!(
        text_or_html(b, "#chart-bgp-state svg")
            .await
            .contains("mark drain")
    );
    // A customer is not shown the operator's page.
    let key = h.user("carol", "f1", "viewer").await;
    sign_out(b).await;
    sign_in(b, &base, &key).await;
    assert!(b.find(Locator::LinkText("Operator")).await.is_err());
    b.goto(&format!("{base}/console/operator"))
        .await
        .expect("goto");
    assert!(text_of(b, "h1").await.contains("Not found"));
}
