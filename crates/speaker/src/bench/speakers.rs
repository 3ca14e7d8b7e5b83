//! The speakers under test, each behind [`Target`]: cic, BIRD, GoBGP and FRR, started
//! with the same config (the feeding peers import everything and are sent nothing; the
//! receiver is sent everything), and each one's count of routes read the same way.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{FEED_ASN, PORT, RECEIVER, RECEIVER_ASN, SPEAKER, SPEAKER_ASN, Target, peer_addr};

/// The speaker called `name` (cic's binary is `cic`), not started yet.
pub(super) fn target(name: &str, cic: &Path) -> Option<Box<dyn Target>> {
    Some(match name {
        "cic" => Box::new(Cic {
            bin: cic.to_path_buf(),
            socket: PathBuf::new(),
            child: None,
        }),
        "bird" => Box::new(Bird {
            socket: PathBuf::new(),
            child: None,
        }),
        "gobgp" => Box::new(GoBgp {
            child: None,
            api: Default::default(),
        }),
        "frr" => Box::new(Frr {
            dir: PathBuf::new(),
            child: None,
        }),
        _ => return None,
    })
}

/// One command on BIRD's control socket: the reply's lines up to the final `0000` line
/// (each line is a four-digit code, then `-` or ` `, then text; a line starting with a
/// space continues the previous one).
fn bird_command(socket: &Path, command: &str) -> Option<String> {
    use std::io::BufRead;
    let s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut r = std::io::BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?; // "0001 BIRD 2.0.12 ready."
    if !line.starts_with("0001") {
        return None;
    }
    (&s).write_all(format!("{command}\n").as_bytes()).ok()?;
    let mut text = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        // The last line: a code followed by a space (`0000 `, `0013 Daemon is up…`, an
        // error); `-` after the code continues the reply.
        let b = line.as_bytes();
        let done = b.len() > 4 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b' ';
        let body = if line.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            line.get(5..).unwrap_or("")
        } else {
            line.as_str()
        };
        text += body;
        if done {
            return Some(text);
        }
    }
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

struct Cic {
    bin: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
}

impl Target for Cic {
    fn name(&self) -> String {
        "cic".into()
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").into()
    }
    fn start(&mut self, dir: &Path, peers: usize, export: bool) -> Result<u32, String> {
        let mut conf = format!(
            "asn = {SPEAKER_ASN}\nrouter_id = \"{SPEAKER}\"\nlisten = [\"{SPEAKER}:{PORT}\"]\nhold_time = 240\n"
        );
        for i in 0..peers {
            conf += &format!(
                "[[neighbor]]\naddress = \"{}\"\nremote_asn = {FEED_ASN}\npassive = true\nimport = \"accept-all\"\n",
                peer_addr(i)
            );
        }
        if export {
            conf += &format!(
                "[[neighbor]]\naddress = \"{RECEIVER}\"\nremote_asn = {RECEIVER_ASN}\npassive = true\nexport = \"all\"\n"
            );
        }
        let path = dir.join("cic.toml");
        std::fs::write(&path, conf).map_err(|e| e.to_string())?;
        self.socket = dir.join("cic.sock");
        let child = Command::new(&self.bin)
            .args(["bgp", "run", "--config"])
            .arg(&path)
            .arg("--socket")
            .arg(&self.socket)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.bin.display()))?;
        let pid = child.id();
        self.child = Some(child);
        wait(|| self.count().is_some(), "cic's control socket")?;
        Ok(pid)
    }
    fn count(&self) -> Option<usize> {
        // The control socket itself, not `cic bgp show routes --count`: a process started
        // every poll would cost the speaker's two cores more than the speaker's answer.
        let mut s = UnixStream::connect(&self.socket).ok()?;
        s.write_all(b"{\"show\":\"count\"}\n").ok()?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).ok()?;
        answer.trim().parse().ok()
    }
    fn stop(&mut self) {
        kill(&mut self.child);
    }
}

struct Bird {
    socket: PathBuf,
    child: Option<Child>,
}

impl Target for Bird {
    fn name(&self) -> String {
        "BIRD".into()
    }
    fn version(&self) -> String {
        Command::new("bird")
            .arg("--version")
            .output()
            .map(|o| {
                let s = String::from_utf8_lossy(&o.stderr).to_string()
                    + &String::from_utf8_lossy(&o.stdout);
                s.trim().trim_start_matches("BIRD version ").to_string()
            })
            .unwrap_or_default()
    }
    fn start(&mut self, dir: &Path, peers: usize, export: bool) -> Result<u32, String> {
        let mut conf = format!(
            "router id {SPEAKER};\nprotocol device {{}}\n\
             template bgp feed {{\n  local {SPEAKER} port {PORT} as {SPEAKER_ASN};\n  passive;\n  multihop;\n  hold time 240;\n\
             ipv4 {{ import all; export none; gateway recursive; igp table master4; }};\n}}\n"
        );
        for i in 0..peers {
            conf += &format!(
                "protocol bgp p{i} from feed {{ neighbor {} as {FEED_ASN}; }}\n",
                peer_addr(i)
            );
        }
        if export {
            // The feed's next hops resolve (as cic needs none to send a route).
            conf += &format!(
                "protocol static {{ ipv4; route 10.42.0.0/16 blackhole; }}\n\
                 protocol bgp receiver {{\n  local {SPEAKER} port {PORT} as {SPEAKER_ASN};\n  neighbor {RECEIVER} as {RECEIVER_ASN};\n  passive;\n  multihop;\n  hold time 240;\n\
                 ipv4 {{ import none; export all; next hop self; }};\n}}\n"
            );
        }
        let path = dir.join("bird.conf");
        std::fs::write(&path, conf).map_err(|e| e.to_string())?;
        self.socket = dir.join("bird.ctl");
        let child = Command::new("bird")
            .arg("-f")
            .arg("-c")
            .arg(&path)
            .arg("-s")
            .arg(&self.socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("bird: {e}"))?;
        let pid = child.id();
        self.child = Some(child);
        wait(|| self.count().is_some(), "BIRD's control socket")?;
        Ok(pid)
    }
    fn count(&self) -> Option<usize> {
        // The protocols' counters ("Routes: 1000000 imported, 0 exported, …"): `show
        // route count` would walk the whole table at every poll, and slow BIRD down.
        // Its control socket directly (what birdc does), for the same reason as cic's.
        let text = bird_command(&self.socket, "show protocols all")?;
        Some(
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("Routes:"))
                .filter_map(|r| r.split_whitespace().next()?.parse::<usize>().ok())
                .sum(),
        )
    }
    fn probe(&self) -> Option<()> {
        bird_command(&self.socket, "show status").map(|_| ())
    }
    fn stop(&mut self) {
        kill(&mut self.child);
    }
}

struct GoBgp {
    child: Option<Child>,
    /// Its gRPC API, connected at the first poll that finds it listening.
    api: std::sync::Mutex<Option<crate::gobgp_api::GoBgpApi>>,
}

/// GoBGP's gRPC API, on loopback only.
const GOBGP_API: &str = "127.0.0.1:50941";

impl GoBgp {
    /// Neighbors `gobgp neighbor` lists (one line each, after its header).
    fn neighbors(&self) -> Option<usize> {
        let (host, port) = GOBGP_API.split_once(':')?;
        let out = Command::new("gobgp")
            .args(["-u", host, "-p", port, "neighbor"])
            .output()
            .ok()?;
        out.status.success().then(|| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
                .count()
        })
    }
}

impl Target for GoBgp {
    fn name(&self) -> String {
        "GoBGP".into()
    }
    fn version(&self) -> String {
        Command::new("gobgpd")
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .trim_start_matches("gobgpd version ")
                    .to_string()
            })
            .unwrap_or_default()
    }
    fn start(&mut self, dir: &Path, peers: usize, export: bool) -> Result<u32, String> {
        let mut conf = format!(
            "[global.config]\nas = {SPEAKER_ASN}\nrouter-id = \"{SPEAKER}\"\nport = {PORT}\nlocal-address-list = [\"{SPEAKER}\"]\n"
        );
        for i in 0..peers {
            conf += &format!(
                "[[neighbors]]\n[neighbors.config]\nneighbor-address = \"{}\"\npeer-as = {FEED_ASN}\n\
                 [neighbors.transport.config]\npassive-mode = true\n[neighbors.timers.config]\nhold-time = 240\n\
                 [neighbors.apply-policy.config]\ndefault-export-policy = \"reject-route\"\n",
                peer_addr(i)
            );
        }
        if export {
            conf += &format!(
                "[[neighbors]]\n[neighbors.config]\nneighbor-address = \"{RECEIVER}\"\npeer-as = {RECEIVER_ASN}\n\
                 [neighbors.transport.config]\npassive-mode = true\n[neighbors.timers.config]\nhold-time = 240\n"
            );
        }
        let path = dir.join("gobgpd.toml");
        std::fs::write(&path, conf).map_err(|e| e.to_string())?;
        let child = Command::new("gobgpd")
            .arg("-f")
            .arg(&path)
            .args([
                "--api-hosts",
                GOBGP_API,
                "--pprof-disable",
                "-p",
                "-l",
                "warn",
            ])
            .stdout(std::fs::File::create(dir.join("gobgpd.log")).map_err(|e| e.to_string())?)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("gobgpd: {e}"))?;
        let pid = child.id();
        self.child = Some(child);
        wait(|| self.count().is_some(), "GoBGP's API")?;
        // gobgpd answers on its API before it has read its neighbors from the config:
        // once, before anything is measured, its CLI is asked until it lists them all.
        let want = peers + usize::from(export);
        wait(|| self.neighbors() == Some(want), "GoBGP's neighbors")?;
        Ok(pid)
    }
    fn count(&self) -> Option<usize> {
        // Its gRPC API directly, one call on a connection kept open (what `gobgp global
        // rib summary` asks), for the same reason as cic's and BIRD's control sockets.
        let mut api = self.api.lock().unwrap_or_else(|e| e.into_inner());
        if api.is_none() {
            *api = Some(crate::gobgp_api::GoBgpApi::connect(GOBGP_API.parse().ok()?).ok()?);
        }
        match api.as_ref()?.global_destinations() {
            Ok(n) => usize::try_from(n).ok(),
            Err(_) => {
                // Connected again at the next poll.
                *api = None;
                None
            }
        }
    }
    fn stop(&mut self) {
        kill(&mut self.child);
        *self.api.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

struct Frr {
    dir: PathBuf,
    child: Option<Child>,
}

impl Frr {
    fn vtysh(&self, command: &str) -> Option<String> {
        // bgpd's vty socket itself, as vtysh talks to it (the command and a NUL; the
        // answer ends with three NULs and a status byte): polling through a `vtysh`
        // process every 20 ms would cost the machine more than the answer, as it did cic
        // and BIRD until they were read directly.
        let mut s = UnixStream::connect(self.dir.join("bgpd.vty")).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(command.as_bytes()).ok()?;
        s.write_all(&[0]).ok()?;
        let mut out = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            let n = s.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            out.extend_from_slice(&chunk[..n]);
            if out.len() >= 4 && out[out.len() - 4..out.len() - 1] == [0, 0, 0] {
                let status = out[out.len() - 1];
                out.truncate(out.len() - 4);
                return (status == 0).then(|| String::from_utf8_lossy(&out).to_string());
            }
        }
    }
}

impl Target for Frr {
    fn name(&self) -> String {
        "FRR".into()
    }
    fn version(&self) -> String {
        Command::new("/usr/lib/frr/bgpd")
            .arg("--version")
            .output()
            .map(|o| {
                let s = String::from_utf8_lossy(&o.stdout).to_string();
                s.lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("bgpd version ")
                    .to_string()
            })
            .unwrap_or_default()
    }
    fn start(&mut self, dir: &Path, peers: usize, export: bool) -> Result<u32, String> {
        // bgpd alone: no zebra (-Z), nothing for the kernel (-n), as root (-S).
        let mut conf = format!(
            "frr defaults traditional\nrouter bgp {SPEAKER_ASN}\n bgp router-id {SPEAKER}\n\
             no bgp ebgp-requires-policy\n neighbor feed peer-group\n neighbor feed remote-as {FEED_ASN}\n\
             neighbor feed passive\n neighbor feed timers 80 240\n\
             neighbor feed route-map NOTHING out\n"
        );
        for i in 0..peers {
            conf += &format!(" neighbor {} peer-group feed\n", peer_addr(i));
        }
        if export {
            // Sent at once, as the others send: FRR otherwise holds an update group's
            // changes for a coalesce time that grows with the peers, 10 s at 200, and
            // may wait an advertisement interval.
            conf += &format!(
                " coalesce-time 0\n neighbor {RECEIVER} remote-as {RECEIVER_ASN}\n neighbor {RECEIVER} passive\n\
                 neighbor {RECEIVER} timers 80 240\n neighbor {RECEIVER} advertisement-interval 0\n"
            );
        }
        // The feeders are sent nothing, as by every other speaker here (FRR would send
        // each feeder the others' routes: its sender-side loop check is off by default).
        conf += "route-map NOTHING deny 10\n";
        let path = dir.join("bgpd.conf");
        std::fs::write(&path, conf).map_err(|e| e.to_string())?;
        self.dir = dir.to_path_buf();
        let child = Command::new("/usr/lib/frr/bgpd")
            .args(["-Z", "-n", "-S", "-f"])
            .arg(&path)
            .arg("-i")
            .arg(dir.join("bgpd.pid"))
            .arg("--vty_socket")
            .arg(dir)
            .args(["-l", &SPEAKER.to_string(), "-p", &PORT.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("bgpd: {e}"))?;
        let pid = child.id();
        self.child = Some(child);
        wait(|| self.count().is_some(), "FRR's vty")?;
        Ok(pid)
    }
    fn count(&self) -> Option<usize> {
        // The BGP table's size, without a walk of it.
        let out = self.vtysh("show bgp ipv4 unicast summary json")?;
        let js: serde_json::Value = serde_json::from_str(&out).ok()?;
        match js.get("ribCount") {
            Some(n) => n.as_u64().map(|n| n as usize),
            // (No peer up yet: FRR answers with an empty object.)
            None => Some(0),
        }
    }
    fn stop(&mut self) {
        kill(&mut self.child);
    }
}

fn wait(mut ok: impl FnMut() -> bool, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        if Instant::now() > deadline {
            return Err(format!("{what} did not come up in 30 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
