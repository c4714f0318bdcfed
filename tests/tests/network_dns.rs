//! Names on user networks (the per-network DNS server), `network
//! connect/disconnect` of running containers, and `--network container:X`.
//! Root only. Every name looked up here is one berth knows: nothing is
//! forwarded to the host's resolvers, and traffic stays inside networks the
//! test's own store creates.

use berth_integration::containers::{rootfs_tar, wait_for, Ctx, IMG};
use berth_integration::engine;
use std::process::{Command, Stdio};

const HTTPD: &str =
    "mkdir -p /www && echo hello-dns > /www/index.html && exec httpd -f -p 80 -h /www";

/// A store with networking on; `system reset -f` when dropped, so bridges,
/// the firewall table and DNS servers never outlive the test.
struct Net {
    c: Ctx,
}

impl Net {
    fn new() -> Net {
        let s = engine::Store::with(engine::Opts {
            prefix: "berth-dns-",
            network: true,
            ..engine::Opts::default()
        });
        let c = Ctx {
            s,
            seen: Default::default(),
        };
        c.ok(&["import", rootfs_tar().to_str().unwrap(), IMG]);
        Net { c }
    }

    fn inspect(&self, what: &str, tpl: &str) -> String {
        self.c.ok(&["inspect", "-f", tpl, what]).trim().to_string()
    }

    /// `run --rm --network NET IMG sh -c SCRIPT`: (code, stdout+stderr).
    fn sh(&self, net: &str, script: &str) -> (i32, String) {
        let o = self
            .c
            .b(&["run", "--rm", "--network", net, IMG, "sh", "-c", script]);
        (o.code, o.text())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = self
            .c
            .s
            .cmd(&["system", "reset", "-f"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn dns_servers(net_id: &str) -> usize {
    let out = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("__dns") && l.contains(net_id))
        .count()
}

/// The first address `nslookup NAME` answers with (busybox prints the
/// server first, then `Name:` and `Address:` lines).
fn looked_up(out: &str) -> Vec<String> {
    out.split("Name:")
        .skip(1)
        .flat_map(|part| {
            part.lines()
                .filter_map(|l| l.trim().strip_prefix("Address:"))
                .map(|a| a.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn names_aliases_short_ids_and_renames_resolve_on_a_user_network() {
    let n = Net::new();
    let net_id = n.c.ok(&["network", "create", "dnsnet"]).trim().to_string();
    let web = n.c.run_d(&[
        "--name",
        "web",
        "--network",
        "dnsnet",
        "--network-alias",
        "www",
        "-h",
        "websrv",
        IMG,
        "sh",
        "-c",
        HTTPD,
    ]);
    let ip = n.inspect("web", "{{.NetworkSettings.IPAddress}}");
    let gw = n.inspect("web", "{{.NetworkSettings.Gateway}}");
    assert!(
        ip.starts_with(gw.rsplit_once('.').unwrap().0),
        "{ip} vs {gw}"
    );
    // The container's resolver is the network's gateway.
    let (code, out) = n.sh("dnsnet", "cat /etc/resolv.conf");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("nameserver {gw}")), "{out}");
    assert_eq!(
        out.matches("nameserver").count(),
        1,
        "only the network's server: {out}"
    );
    assert_eq!(dns_servers(&net_id), 1, "one DNS server for the network");
    for name in ["web", "WWW", "websrv", &web[..12]] {
        let (code, out) = n.sh("dnsnet", &format!("nslookup {name}"));
        assert_eq!(code, 0, "nslookup {name}: {out}");
        assert_eq!(looked_up(&out), vec![ip.clone()], "nslookup {name}: {out}");
    }
    // By name through the resolver, the way programs use it.
    let (code, out) = n.sh(
        "dnsnet",
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 www 80",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("hello-dns"), "{out}");
    // A rename is answered at once.
    n.c.ok(&["rename", "web", "web2"]);
    let (code, out) = n.sh("dnsnet", "nslookup web2");
    assert_eq!(code, 0, "{out}");
    assert_eq!(looked_up(&out), vec![ip.clone()], "{out}");
    // The server leaves with the network's last container.
    n.c.ok(&["rm", "-f", "web2"]);
    assert!(
        wait_for(15.0, || dns_servers(&net_id) == 0),
        "the DNS server outlived the network's last container"
    );
    // And comes back with the next one.
    let (code, out) = n.sh("dnsnet", "nslookup $(hostname)");
    assert_eq!(code, 0, "{out}");
    assert_eq!(looked_up(&out).len(), 1, "{out}");
}

#[test]
fn a_running_container_is_connected_and_disconnected() {
    let n = Net::new();
    n.c.ok(&["network", "create", "front"]);
    n.c.ok(&["network", "create", "back"]);
    n.c.run_d(&["--name", "api", "--network", "back", IMG, "sh", "-c", HTTPD]);
    n.c.run_d(&["--name", "gate", "--network", "front", IMG, "sleep", "300"]);
    let api_ip = n.inspect("api", "{{.NetworkSettings.IPAddress}}");
    let fetch = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {api_ip} 80");
    // Separate networks: no way through.
    let o = n.c.b(&["exec", "gate", "sh", "-c", &fetch]);
    assert!(
        !o.out.contains("hello-dns"),
        "networks are not isolated: {}",
        o.text()
    );
    n.c.ok(&["network", "connect", "--alias", "gw", "back", "gate"]);
    let o = n.c.ok(&["exec", "gate", "ip", "-o", "-4", "addr"]);
    assert!(o.contains("eth1"), "no second interface: {o}");
    let o = n.c.ok(&["exec", "gate", "sh", "-c", &fetch]);
    assert!(o.contains("hello-dns"), "{o}");
    // Names of the new network resolve from the old network's server too.
    let o = n.c.ok(&[
        "exec",
        "gate",
        "sh",
        "-c",
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 api 80",
    ]);
    assert!(o.contains("hello-dns"), "{o}");
    // And the alias given at connect is known on that network.
    let (code, out) = n.sh("back", "nslookup gw");
    assert_eq!(code, 0, "{out}");
    assert_eq!(looked_up(&out).len(), 1, "{out}");
    let nets = n.inspect("gate", "{{json .NetworkSettings.Networks}}");
    assert!(
        nets.contains("\"front\"") && nets.contains("\"back\""),
        "{nets}"
    );
    // Connecting twice is refused.
    let o = n.c.b(&["network", "connect", "back", "gate"]);
    assert_ne!(o.code, 0, "{}", o.text());
    n.c.ok(&["network", "disconnect", "back", "gate"]);
    let o = n.c.ok(&["exec", "gate", "ip", "-o", "-4", "addr"]);
    assert!(!o.contains("eth1"), "eth1 stayed: {o}");
    let members =
        n.c.ok(&["network", "inspect", "-f", "{{json .Containers}}", "back"]);
    assert!(!members.contains("gate"), "{members}");
    // `network rm` of a network a container is configured with is refused.
    let o = n.c.b(&["network", "rm", "front"]);
    assert_ne!(o.code, 0, "{}", o.text());
    // The disconnect sticks across a restart.
    n.c.ok(&["restart", "-t", "0", "gate"]);
    let nets = n.inspect("gate", "{{json .NetworkSettings.Networks}}");
    assert!(
        nets.contains("\"front\"") && !nets.contains("\"back\""),
        "{nets}"
    );
}

#[test]
fn network_container_mode_shares_the_other_namespace() {
    let n = Net::new();
    n.c.run_d(&["--name", "box", IMG, "sh", "-c", HTTPD]);
    let host = n.inspect("box", "{{.Config.Hostname}}");
    let o = n.c.b(&[
        "run",
        "--rm",
        "--network",
        "container:box",
        IMG,
        "sh",
        "-c",
        "hostname; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 127.0.0.1 80",
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(o.out.contains("hello-dns"), "{}", o.text());
    assert!(o.out.starts_with(&host), "hostname {host:?}: {}", o.text());
    let mode =
        n.c.ok(&["create", "--network", "container:box", IMG, "true"]);
    let id = mode.trim();
    let shown = n.inspect(id, "{{.HostConfig.NetworkMode}}");
    assert!(
        shown.starts_with("container:") && shown.len() == 10 + 64,
        "{shown}"
    );
    for bad in [
        vec!["run", "--rm", "--network", "container:nosuch", IMG, "true"],
        vec![
            "run",
            "--rm",
            "--network",
            "container:box",
            "-p",
            "80",
            IMG,
            "true",
        ],
        vec![
            "run",
            "--rm",
            "--network",
            "container:box",
            "-h",
            "x",
            IMG,
            "true",
        ],
    ] {
        let o = n.c.b(&bad);
        assert_eq!(o.code, 125, "{bad:?}: {}", o.text());
    }
    n.c.ok(&["stop", "-t", "0", "box"]);
    let o = n.c.b(&["start", id]);
    assert_ne!(
        o.code,
        0,
        "joined a stopped container's network: {}",
        o.text()
    );
}

/// A network's DNS server that was killed comes back with the next `berth
/// ps`, and names resolve again in the containers already running.
#[test]
fn a_killed_dns_server_comes_back_with_ps() {
    let n = Net::new();
    let net_id = n.c.ok(&["network", "create", "revnet"]).trim().to_string();
    n.c.run_d(&[
        "--name",
        "rev-web",
        "--network",
        "revnet",
        IMG,
        "sleep",
        "1000",
    ]);
    let ip = n.inspect("rev-web", "{{.NetworkSettings.IPAddress}}");
    assert_eq!(dns_servers(&net_id), 1);
    let out = Command::new("pkill")
        .args(["-KILL", "-f", &format!("__dns {net_id}")])
        .status()
        .unwrap();
    assert!(out.success(), "pkill found the server");
    assert!(
        wait_for(10.0, || dns_servers(&net_id) == 0),
        "the server did not die"
    );
    n.c.ok(&["ps"]);
    assert_eq!(dns_servers(&net_id), 1, "ps brought the server back");
    let o = n.c.b(&["exec", "rev-web", "nslookup", "rev-web"]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert_eq!(looked_up(&o.out), vec![ip], "{}", o.text());
    // A live server is left alone: still one.
    n.c.ok(&["ps"]);
    assert_eq!(dns_servers(&net_id), 1);
}

/// `network rm` stops the network's DNS server at once (it would hold the
/// gateway's port 53 until its next check), so a network made right after
/// on the same subnet gets a working server of its own.
#[test]
fn network_rm_stops_its_dns_server_at_once() {
    let n = Net::new();
    let subnet = "10.213.7.0/24";
    let id1 = n.c.ok(&["network", "create", "--subnet", subnet, "rmnet1"]);
    let id1 = id1.trim().to_string();
    n.c.ok(&["run", "--rm", "--network", "rmnet1", IMG, "true"]);
    n.c.ok(&["network", "rm", "rmnet1"]);
    assert_eq!(dns_servers(&id1), 0, "the server outlived network rm");
    let id2 = n.c.ok(&["network", "create", "--subnet", subnet, "rmnet2"]);
    let (code, out) = n.sh("rmnet2", "nslookup $(hostname)");
    assert_eq!(code, 0, "{out}");
    assert_eq!(looked_up(&out).len(), 1, "{out}");
    assert!(!out.contains("no DNS server"), "{out}");
    assert_eq!(dns_servers(id2.trim()), 1);
}
