//! Root-only checks against the real kernel: a namespace, a bridge, a veth
//! pair into the namespace, addresses and routes, and cleanup.

use berth_net::netlink::{self, Netlink, Veth};
use berth_net::netns::NetNs;
use std::os::fd::AsRawFd;

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

struct DelLink(String);
impl Drop for DelLink {
    fn drop(&mut self) {
        if let Ok(nl) = Netlink::open() {
            if let Ok(Some(i)) = nl.link_index(&self.0) {
                let _ = nl.delete_link(i);
            }
        }
    }
}

#[test]
fn bridge_veth_namespace_addresses_routes() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tag = format!("{:05x}", std::process::id() & 0xfffff);
    let br = format!("bt{tag}br");
    let host_end = format!("bt{tag}v");
    let _g1 = DelLink(br.clone());
    let _g2 = DelLink(host_end.clone());
    let nl = Netlink::open().unwrap();
    nl.create_bridge(&br).unwrap();
    assert!(netlink::is_exists(&nl.create_bridge(&br).unwrap_err()));
    let bi = nl.link_index(&br).unwrap().unwrap();
    nl.add_address(bi, "198.18.250.1".parse().unwrap(), 24)
        .unwrap();
    let ns = NetNs::create().unwrap();
    nl.create_veth(&Veth {
        host: &host_end,
        bridge: bi,
        peer: "eth0",
        netns: ns.fd.as_raw_fd(),
        peer_mac: Some([2, 0x42, 198, 18, 250, 2]),
        mtu: None,
    })
    .unwrap();
    assert!(nl.link_index(&host_end).unwrap().is_some());
    assert!(nl.link_index("nonexistent0").unwrap().is_none());
    let e = ns
        .netlink
        .link_index("eth0")
        .unwrap()
        .expect("eth0 in the namespace");
    ns.netlink.set_up(e).unwrap();
    ns.netlink
        .add_address(e, "198.18.250.2".parse().unwrap(), 24)
        .unwrap();
    ns.netlink
        .add_route(
            "0.0.0.0".parse().unwrap(),
            0,
            Some("198.18.250.1".parse().unwrap()),
            e,
        )
        .unwrap();
    // The namespace sees its address: ping the bridge from inside.
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .args(["ip", "-o", "addr", "show", "eth0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("198.18.250.2/24"), "{text}");
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .args(["busybox", "ping", "-c1", "-W2", "198.18.250.1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Dropping the namespace's last reference takes the veth pair away.
    drop(ns);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while nl.link_index(&host_end).unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "veth outlived its namespace"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
