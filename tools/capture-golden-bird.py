#!/usr/bin/env python3
"""Captures BGP messages encoded by BIRD, for the codec's golden-bytes tests.

Builds two network namespaces joined by a veth pair, runs BIRD (AS 65001) in one and a
minimal BGP peer written here (AS 200350, 4-octet) in the other, and writes every
message BIRD sends as one hex file under crates/bgp/tests/golden/bird/.
Run as root:  python3 tools/capture-golden-bird.py
The checked-in files were made with BIRD 2.0.12 (Debian 12).
"""
import os, socket, struct, subprocess, sys, tempfile, time

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "bgp", "tests", "golden", "bird")
NS_B, NS_P = "cicgold-bird", "cicgold-peer"

def sh(*a, check=True):
    return subprocess.run(a, check=check, capture_output=True, text=True)

def cleanup():
    for ns in (NS_B, NS_P):
        sh("ip", "netns", "del", ns, check=False)

BIRD_CONF = """
router id 10.99.0.1;
protocol device {}
protocol static s4 {
  ipv4;
  route 192.168.10.0/24 blackhole;
  route 10.20.0.0/16 blackhole;
  route 0.0.0.0/0 blackhole;
  route 172.16.0.0/12 blackhole;
}
protocol bgp peer {
  local 10.99.0.1 as 65001;
  neighbor 10.99.0.2 as 200350;
  hold time 90;
  ipv4 {
    import all;
    export filter {
      if net = 10.20.0.0/16 then {
        bgp_med = 50;
        bgp_community.add((65001,100));
        bgp_community.add((65001,200));
        bgp_large_community.add((65001,1,2));
      }
      if net = 172.16.0.0/12 then bgp_path.prepend(65001);
      accept;
    };
  };
}
"""

def read_msg(s):
    hdr = b""
    while len(hdr) < 19:
        c = s.recv(19 - len(hdr))
        if not c:
            return None
        hdr += c
    n = struct.unpack("!H", hdr[16:18])[0]
    body = b""
    while len(body) < n - 19:
        c = s.recv(n - 19 - len(body))
        if not c:
            return None
        body += c
    return hdr + body

def msg(t, body):
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), t) + body

def main():
    cleanup()
    sh("ip", "netns", "add", NS_B); sh("ip", "netns", "add", NS_P)
    sh("ip", "link", "add", "gb0", "netns", NS_B, "type", "veth", "peer", "name", "gp0", "netns", NS_P)
    sh("ip", "-n", NS_B, "addr", "add", "10.99.0.1/30", "dev", "gb0")
    sh("ip", "-n", NS_P, "addr", "add", "10.99.0.2/30", "dev", "gp0")
    for ns, dev in ((NS_B, "gb0"), (NS_P, "gp0")):
        sh("ip", "-n", ns, "link", "set", dev, "up"); sh("ip", "-n", ns, "link", "set", "lo", "up")
    tmp = tempfile.mkdtemp()
    conf = os.path.join(tmp, "bird.conf"); open(conf, "w").write(BIRD_CONF)
    sock = os.path.join(tmp, "bird.ctl")
    # The peer listens inside its namespace: run this script's listener through ip netns exec.
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        return
    peer = subprocess.Popen(["ip", "netns", "exec", NS_P, sys.executable, __file__, "--listen", OUT])
    time.sleep(0.5)  # tool script, not a test: give the listener a moment to bind
    sh("ip", "netns", "exec", NS_B, "bird", "-c", conf, "-s", sock, "-P", os.path.join(tmp, "pid"))
    peer.wait(timeout=60)
    sh("birdc", "-s", sock, "down", check=False)
    cleanup()
    print("wrote", sorted(os.listdir(OUT)))

def listen(out):
    os.makedirs(out, exist_ok=True)
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("10.99.0.2", 179)); ls.listen(1)
    s, _ = ls.accept()
    caps = bytes([2, 6, 1, 4, 0, 1, 0, 1, 2, 2, 2, 0, 2, 6, 65, 4]) + struct.pack("!I", 200350)
    s.sendall(msg(1, struct.pack("!BHH4sB", 4, 23456, 90, socket.inet_aton("10.99.0.2"), len(caps)) + caps))
    n = 0
    while True:
        m = read_msg(s)
        if m is None:
            break
        t = m[18]
        name = {1: "open", 4: "keepalive", 3: "notification"}.get(t)
        if t == 2:
            n += 1
            name = "eor" if len(m) == 23 else "update-%d" % n
        open(os.path.join(out, name + ".hex"), "w").write(m.hex() + "\n")
        if t == 1:
            s.sendall(msg(4, b""))
        if t == 2 and len(m) == 23:
            # End-of-RIB: ask BIRD to stop with a message, to capture its Cease.
            subprocess.run(["true"])
            s.sendall(msg(3, bytes([6, 2]) + bytes([5]) + b"maint"))
            time.sleep(0.2)
            break
    s.close()

if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--listen":
        listen(sys.argv[2])
    else:
        main()
