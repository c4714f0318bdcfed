//! berth's container networking, the mechanism half: talking to the kernel
//! (rtnetlink, network namespaces, sysctls), nftables in berth's own table,
//! address arithmetic for IPAM, and the container DNS server. What exists
//! (networks, leases, published ports) is the engine's, in the state DB.

pub mod dns;
