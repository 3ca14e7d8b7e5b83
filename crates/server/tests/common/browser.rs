//! A headless Chromium driven through WebDriver (Debian's chromium and chromium-driver),
//! and what the console's browser tests do with it. Shared by the server's console tests
//! and the lab's (which includes this file by path).
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const DRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    pub client: Client,
    _processes: Processes,
}

/// chromedriver and the profile of its Chromium.
struct Processes {
    driver: Child,
    /// This browser's own profile: no two share one, and its processes are found by it.
    profile: std::path::PathBuf,
}

impl Drop for Processes {
    /// chromedriver and every Chromium process it started (its process group, and any
    /// process naming this profile) are killed, whether the test passed or not.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.profile.display().to_string()])
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A headless Chromium at 1280×800 (or `width`×`height`), or `None` (skipped) without one.
pub async fn browser(test: &str, width: u32, height: u32) -> Option<Browser> {
    let have = std::path::Path::new(DRIVER).exists() && std::path::Path::new(CHROMIUM).exists();
    if !have {
        if std::env::var("CIC_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!(
                "{test}: CIC_REQUIRE_BROWSER=1 but {DRIVER} or {CHROMIUM} is missing (apt install chromium chromium-driver)"
            );
        }
        eprintln!("{test}: skipped (install chromium and chromium-driver)");
        return None;
    }
    // The WebDriver client's TLS (unused: chromedriver speaks HTTP on loopback) needs a
    // provider; the server's own.
    let _ = Arc::unwrap_or_clone(cic_server::listen::provider()).install_default();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let profile = std::env::temp_dir().join(format!("cic-chromium-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).expect("a profile directory");
    use std::os::unix::process::CommandExt as _;
    let driver = Command::new(DRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start chromedriver");
    // From here the processes are cleaned up however this function ends.
    let processes = Processes { driver, profile };
    let mut caps = serde_json::Map::new();
    // The lab's server has a certificate of the lab's own CA.
    caps.insert("acceptInsecureCerts".into(), json!(true));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", format!("--user-data-dir={}", processes.profile.display()),
               format!("--window-size={width},{height}")]}),
    );
    // chromedriver takes a moment to listen: try until it answers (bounded). A session
    // it refuses (Chromium did not start) is tried again twice, not more.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut refused = 0;
    let client = loop {
        let mut b = ClientBuilder::rustls().expect("rustls");
        match b
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) => {
                if matches!(e, fantoccini::error::NewSessionError::SessionNotCreated(_)) {
                    refused += 1;
                }
                if tokio::time::Instant::now() > deadline || refused > 2 {
                    panic!("{test}: no WebDriver session: {e}")
                }
                tokio::time::sleep(Duration::from_millis(100)).await
            }
        }
    };
    Some(Browser {
        client,
        _processes: processes,
    })
}

fn screenshot_dirs() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut dirs = vec![root.join("target/console-screenshots")];
    if std::env::var("CIC_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        dirs.push(root.join("docs/console"));
    }
    dirs
}

/// A screenshot of the whole page (the window grown to the page's height for it, at most
/// 2,400 pixels, then put back).
pub async fn screenshot(b: &Client, name: &str) {
    let (w, h) = b.get_window_size().await.expect("window size");
    let page = b
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .ok()
        .and_then(|v| v.as_u64())
        .unwrap_or(h);
    let _ = b
        .set_window_size(w as u32, page.clamp(h, 2400) as u32 + 120)
        .await;
    let png = b.screenshot().await.expect("screenshot");
    let _ = b.set_window_size(w as u32, h as u32).await;
    for d in screenshot_dirs() {
        std::fs::create_dir_all(&d).expect("screenshot dir");
        std::fs::write(d.join(format!("{name}.png")), &png).expect("write screenshot");
    }
}

pub async fn sign_in(b: &Client, base: &str, key: &str) {
    b.goto(&format!("{base}/console/")).await.expect("goto");
    let url = b.current_url().await.expect("url");
    assert!(
        url.path().ends_with("/console/signin"),
        "sent to sign in: {url}"
    );
    b.find(Locator::Id("key"))
        .await
        .expect("key field")
        .send_keys(key)
        .await
        .expect("type key");
    b.find(Locator::Css("form button[type=submit]"))
        .await
        .expect("sign in button")
        .click()
        .await
        .expect("submit");
    wait_for_path(b, "/console/").await;
}

/// Signs out, and waits for the sign-in page it leads to.
pub async fn sign_out(b: &Client) {
    b.find(Locator::Css("form.signout button"))
        .await
        .expect("sign out button")
        .click()
        .await
        .expect("sign out");
    wait_for_path(b, "/console/signin").await;
}

/// The text of the first element `css` selects, once the page has one (a page loading
/// after a click may not yet: tried for at most 10 s).
pub async fn text_of(b: &Client, css: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = match b.find(Locator::Css(css)).await {
            Ok(e) => e.text().await,
            Err(e) => Err(e),
        };
        match got {
            Ok(t) => return t,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("{css}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits until the browser is at a page whose path ends with `end` (at most 10 s).
pub async fn wait_for_path(b: &Client, end: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let url = b.current_url().await.expect("url");
        if url.path().ends_with(end) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("never reached …{end}; at {url}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn body_text(b: &Client) -> String {
    text_of(b, "body").await
}

/// Waits (at most 15 s) until the page's text contains `what`: the page updates itself.
pub async fn wait_for_text(b: &Client, css: &str, what: &str) {
    wait_for_text_within(b, css, what, Duration::from_secs(15)).await
}

/// [`wait_for_text`], waiting at most `within`.
pub async fn wait_for_text_within(b: &Client, css: &str, what: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        // The element must be there (an empty `what` waits for it to appear).
        let t = match b.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.ok(),
            Err(_) => None,
        };
        if t.as_deref().is_some_and(|t| t.contains(what)) {
            return;
        }
        let t = t.unwrap_or_default();
        if tokio::time::Instant::now() > deadline {
            let page = b.source().await.unwrap_or_default();
            panic!("{css} never showed {what:?}; it shows {t:?}; the page:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn text_or_html(b: &Client, css: &str) -> String {
    b.find(Locator::Css(css))
        .await
        .expect(css)
        .html(false)
        .await
        .expect("html")
}

/// Types each value into the input of that id.
pub async fn fill(b: &Client, values: &[(&str, &str)]) {
    for (id, v) in values {
        b.find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"))
            .send_keys(v)
            .await
            .expect("type");
    }
}

/// Sends the page's form.
pub async fn submit(b: &Client) {
    b.find(Locator::Css("form.form button[type=submit]"))
        .await
        .expect("save")
        .click()
        .await
        .expect("submit");
}

/// Clicks the element of that id.
pub async fn click(b: &Client, id: &str) {
    b.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {id}: {e}"));
}

/// Chooses `value` in the select of that id.
pub async fn choose(b: &Client, id: &str, value: &str) {
    b.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"))
        .select_by_value(value)
        .await
        .unwrap_or_else(|e| panic!("choose {value} in {id}: {e}"));
}
