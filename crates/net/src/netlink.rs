//! A minimal rtnetlink client: just the requests berth needs to wire a
//! container (bridge, veth pair into a namespace, addresses, routes, link
//! state), each one request and its acknowledgement on a blocking socket.
//!
//! A netlink socket talks to the network namespace it was created in, so a
//! [`Netlink`] opened inside a container's namespace keeps configuring that
//! namespace from any thread.

use crate::Error;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;

const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_PROTINFO: u16 = 12;
const IFLA_LINKINFO: u16 = 18;
const IFLA_BRPORT_MODE: u16 = 4;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const NLA_F_NESTED: u16 = 0x8000;

const IFF_UP: u32 = 1;

/// Message builder: a header, a fixed struct, then attributes (nested ones
/// patched with their length when closed).
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(kind: u16, flags: u16, fixed: &[u8]) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in finish()
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // seq, set on send
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
        buf.extend_from_slice(fixed);
        Msg { buf }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Msg {
        self.pad();
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn str_attr(&mut self, kind: u16, s: &str) -> &mut Msg {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v)
    }

    fn u32_attr(&mut self, kind: u16, v: u32) -> &mut Msg {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// Opens a nested attribute; returns where its length goes.
    fn begin(&mut self, kind: u16) -> usize {
        self.pad();
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end(&mut self, at: usize) {
        self.pad();
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn raw(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = libc::AF_UNSPEC as u8;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

fn family(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A veth pair to create: `host` stays here (enslaved to `bridge`), `peer`
/// is created directly inside the namespace `netns`.
pub struct Veth<'a> {
    pub host: &'a str,
    pub bridge: u32,
    pub peer: &'a str,
    pub netns: RawFd,
    pub peer_mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
}

/// An rtnetlink socket bound to the namespace it was opened in.
pub struct Netlink {
    fd: OwnedFd,
    seq: AtomicU32,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink, Error> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(Error::sys("netlink socket"));
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a zeroed sockaddr_nl is valid (port 0: the kernel picks).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: sa is a valid sockaddr_nl of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(Error::sys("netlink bind"));
        }
        // A kernel that never answers must not hang berth.
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: tv is a valid timeval for SO_RCVTIMEO.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        Ok(Netlink {
            fd,
            seq: AtomicU32::new(1),
        })
    }

    /// Sends `m` and waits for its acknowledgement; returns the kernel's
    /// answer message (for GET requests) or an empty vec.
    fn request(&self, mut m: Msg, what: &str) -> Result<Vec<u8>, Error> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let len = m.buf.len() as u32;
        m.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        m.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        // SAFETY: the buffer is valid for its length.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                m.buf.as_ptr() as *const libc::c_void,
                m.buf.len(),
                0,
            )
        };
        if n < 0 {
            return Err(Error::sys(what));
        }
        let mut buf = vec![0u8; 32 * 1024];
        let mut answer = Vec::new();
        loop {
            // SAFETY: buf is valid for writes of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::Netlink {
                    what: what.to_string(),
                    source: e,
                });
            }
            let mut off = 0usize;
            let n = n as usize;
            while off + 16 <= n {
                let mlen = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
                let mseq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().unwrap());
                if mlen < 16 || off + mlen > n {
                    return Err(Error::Netlink {
                        what: what.to_string(),
                        source: std::io::Error::other("malformed netlink answer"),
                    });
                }
                if mseq == seq {
                    if kind == NLMSG_ERROR {
                        if mlen < 20 {
                            return Err(Error::Netlink {
                                what: what.to_string(),
                                source: std::io::Error::other("short netlink error"),
                            });
                        }
                        let code = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap());
                        if code == 0 {
                            return Ok(answer);
                        }
                        return Err(Error::Netlink {
                            what: what.to_string(),
                            source: std::io::Error::from_raw_os_error(-code),
                        });
                    }
                    answer = buf[off..off + mlen].to_vec();
                }
                off += (mlen + 3) & !3;
            }
        }
    }

    /// The index of the link called `name`, if there is one.
    pub fn link_index(&self, name: &str) -> Result<Option<u32>, Error> {
        let mut m = Msg::new(RTM_GETLINK, 0, &ifinfomsg(0, 0, 0));
        m.str_attr(IFLA_IFNAME, name);
        match self.request(m, &format!("find link {name}")) {
            Ok(a) if a.len() >= 32 => {
                let idx = i32::from_ne_bytes(a[20..24].try_into().unwrap());
                Ok(Some(idx as u32))
            }
            Ok(_) => Ok(None),
            Err(Error::Netlink { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a bridge (up). EEXIST when it exists.
    pub fn create_bridge(&self, name: &str) -> Result<(), Error> {
        let mut m = Msg::new(
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            &ifinfomsg(0, IFF_UP, IFF_UP),
        );
        m.str_attr(IFLA_IFNAME, name);
        let li = m.begin(IFLA_LINKINFO);
        m.str_attr(IFLA_INFO_KIND, "bridge");
        m.end(li);
        self.request(m, &format!("create bridge {name}")).map(drop)
    }

    /// Creates a veth pair: the host end up and enslaved to the bridge,
    /// the peer (down) inside `v.netns`.
    pub fn create_veth(&self, v: &Veth) -> Result<(), Error> {
        let mut m = Msg::new(
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            &ifinfomsg(0, IFF_UP, IFF_UP),
        );
        m.str_attr(IFLA_IFNAME, v.host);
        m.u32_attr(IFLA_MASTER, v.bridge);
        if let Some(mtu) = v.mtu {
            m.u32_attr(IFLA_MTU, mtu);
        }
        let li = m.begin(IFLA_LINKINFO);
        m.str_attr(IFLA_INFO_KIND, "veth");
        let data = m.begin(IFLA_INFO_DATA);
        let peer = m.begin(VETH_INFO_PEER);
        // Not up here: the kernel opens the peer before the pair is linked
        // (ENOTCONN); the caller sets it up from inside the namespace.
        m.raw(&ifinfomsg(0, 0, 0));
        m.str_attr(IFLA_IFNAME, v.peer);
        m.u32_attr(IFLA_NET_NS_FD, v.netns as u32);
        if let Some(mac) = v.peer_mac {
            m.attr(IFLA_ADDRESS, &mac);
        }
        if let Some(mtu) = v.mtu {
            m.u32_attr(IFLA_MTU, mtu);
        }
        m.end(peer);
        m.end(data);
        m.end(li);
        self.request(m, &format!("create veth {}", v.host))
            .map(drop)
    }

    /// Turns on hairpin mode of a bridge port: frames may leave by the
    /// port they came in (a container reaching its own published port
    /// through the host when br_netfilter hands bridged traffic to NAT).
    pub fn set_hairpin(&self, index: u32) -> Result<(), Error> {
        let mut fixed = ifinfomsg(index as i32, 0, 0);
        fixed[0] = libc::AF_BRIDGE as u8;
        let mut m = Msg::new(RTM_SETLINK, 0, &fixed);
        let p = m.begin(IFLA_PROTINFO);
        m.attr(IFLA_BRPORT_MODE, &[1u8]);
        m.end(p);
        self.request(m, &format!("set hairpin mode on link {index}"))
            .map(drop)
    }

    /// Sets a link up.
    pub fn set_up(&self, index: u32) -> Result<(), Error> {
        let m = Msg::new(RTM_NEWLINK, 0, &ifinfomsg(index as i32, IFF_UP, IFF_UP));
        self.request(m, &format!("set link {index} up")).map(drop)
    }

    /// Deletes a link (its veth peer goes with it).
    pub fn delete_link(&self, index: u32) -> Result<(), Error> {
        let m = Msg::new(RTM_DELLINK, 0, &ifinfomsg(index as i32, 0, 0));
        self.request(m, &format!("delete link {index}")).map(drop)
    }

    /// Adds `ip/prefix` to a link. EEXIST when it is there.
    pub fn add_address(&self, index: u32, ip: IpAddr, prefix: u8) -> Result<(), Error> {
        let mut fixed = [0u8; 8];
        fixed[0] = family(&ip);
        fixed[1] = prefix;
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &fixed);
        let b = ip_bytes(&ip);
        m.attr(IFA_LOCAL, &b);
        m.attr(IFA_ADDRESS, &b);
        if ip.is_ipv6() {
            // Usable at once: no duplicate address detection delay.
            m.u32_attr(IFA_FLAGS, IFA_F_NODAD);
        }
        self.request(m, &format!("add address {ip}/{prefix}"))
            .map(drop)
    }

    /// Adds a route to `dst/prefix` (prefix 0: the default route) via
    /// `gateway` on link `index`.
    pub fn add_route(
        &self,
        dst: IpAddr,
        prefix: u8,
        gateway: Option<IpAddr>,
        index: u32,
    ) -> Result<(), Error> {
        let mut fixed = [0u8; 12];
        fixed[0] = family(&dst);
        fixed[1] = prefix;
        fixed[4] = libc::RT_TABLE_MAIN;
        fixed[5] = libc::RTPROT_BOOT;
        fixed[6] = if gateway.is_some() {
            libc::RT_SCOPE_UNIVERSE
        } else {
            libc::RT_SCOPE_LINK
        };
        fixed[7] = libc::RTN_UNICAST;
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &fixed);
        if prefix > 0 {
            m.attr(RTA_DST, &ip_bytes(&dst));
        }
        if let Some(gw) = gateway {
            m.attr(RTA_GATEWAY, &ip_bytes(&gw));
        }
        m.u32_attr(RTA_OIF, index);
        self.request(m, &format!("add route {dst}/{prefix}"))
            .map(drop)
    }
}

/// Whether a netlink error is "already exists".
pub fn is_exists(e: &Error) -> bool {
    matches!(e, Error::Netlink { source, .. } if source.raw_os_error() == Some(libc::EEXIST))
}

/// Parses `aa:bb:cc:dd:ee:ff`; a multicast or all-zero address is refused.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        mac[i] = u8::from_str_radix(p, 16).ok()?;
    }
    if mac[0] & 1 == 1 || mac == [0; 6] {
        return None;
    }
    Some(mac)
}

/// A locally administered unicast MAC derived from an IPv4 address, as
/// Docker does (02:42:a.b.c.d); stable for a given address.
pub fn mac_for(ip: IpAddr) -> [u8; 6] {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            [0x02, 0x42, o[0], o[1], o[2], o[3]]
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            [0x02, 0x42, o[12], o[13], o[14], o[15]]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_aligned_and_nested_lengths_patched() {
        let mut m = Msg::new(RTM_NEWLINK, 0, &ifinfomsg(0, 0, 0));
        m.str_attr(IFLA_IFNAME, "abc");
        let li = m.begin(IFLA_LINKINFO);
        m.str_attr(IFLA_INFO_KIND, "veth");
        m.end(li);
        assert_eq!(m.buf.len() % 4, 0);
        // header 16 + ifinfomsg 16 + "abc\0" attr 8 + nested (4 + "veth\0" attr 12)
        assert_eq!(m.buf.len(), 16 + 16 + 8 + 16);
        let nested_len = u16::from_ne_bytes(m.buf[40..42].try_into().unwrap());
        assert_eq!(nested_len, 16);
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:02"),
            Some([2, 0x42, 0xac, 0x11, 0, 2])
        );
        assert_eq!(parse_mac("01:00:5e:00:00:01"), None, "multicast");
        assert_eq!(parse_mac("00:00:00:00:00:00"), None);
        assert_eq!(parse_mac("02:42:ac:11:00"), None);
        assert_eq!(parse_mac("02:42:ac:11:00:2"), None);
        assert_eq!(parse_mac("zz:42:ac:11:00:02"), None);
        assert_eq!(
            mac_for("172.17.0.2".parse().unwrap()),
            [2, 0x42, 172, 17, 0, 2]
        );
    }
}
