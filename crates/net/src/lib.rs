//! berth's container networking, the mechanism half: talking to the kernel
//! (rtnetlink, network namespaces, sysctls), nftables in berth's own table,
//! address arithmetic for IPAM, and the container DNS server. What exists
//! (networks, leases, published ports) is the engine's, in the state DB.

pub mod dns;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod nft;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Nft(String),
    #[error("{path}: {source}")]
    Sysctl {
        path: String,
        source: std::io::Error,
    },
}

impl Error {
    /// The calling thread's errno as a netlink/syscall error.
    pub(crate) fn sys(what: &str) -> Error {
        Error::Netlink {
            what: what.to_string(),
            source: std::io::Error::last_os_error(),
        }
    }
}

/// Sets a sysctl (`net/ipv4/ip_forward`) unless it already has `value`.
pub fn sysctl(key: &str, value: &str) -> Result<(), Error> {
    let path = format!("/proc/sys/{key}");
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(|source| Error::Sysctl { path, source })
}
