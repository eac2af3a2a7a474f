//! Which addresses a webhook may be sent to: [`is_global`], and the [`AllowList`] of networks
//! and socket addresses that a deployment opens on purpose (for development).
//!
//! Endpoint URLs are customer input. Without a check, a customer could point their endpoint at
//! the sender's own network (`http://127.0.0.1:5432/`, `http://169.254.169.254/` for cloud
//! metadata, `http://10.0.0.7/admin`) and have the service send requests there: server-side
//! request forgery. `HttpTransport` (feature `http`) sends only to [global](is_global)
//! addresses, plus those an [`AllowList`] names.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Whether `ip` is a global (public, unicast) address: one a webhook may be sent to without
/// an explicit [`AllowList`] entry.
///
/// Not global:
///
/// - IPv4: `0.0.0.0/8` ("this network", the unspecified address), `10.0.0.0/8`,
///   `172.16.0.0/12` and `192.168.0.0/16` (private), `100.64.0.0/10` (shared, carrier-grade
///   NAT), `127.0.0.0/8` (loopback), `169.254.0.0/16` (link-local, cloud metadata),
///   `192.0.0.0/24` (IETF protocol assignments), `192.0.2.0/24`, `198.51.100.0/24` and
///   `203.0.113.0/24` (documentation), `192.88.99.0/24` (6to4 relays, deprecated),
///   `198.18.0.0/15` (benchmarking), `224.0.0.0/4` (multicast) and `240.0.0.0/4` (reserved,
///   with the broadcast address).
/// - IPv6: everything outside `2000::/3` (global unicast): the unspecified address `::`,
///   loopback `::1`, IPv4-compatible `::a.b.c.d`, unique local `fc00::/7`, link-local
///   `fe80::/10`, multicast `ff00::/8`, discard `100::/64`, local-use NAT64 `64:ff9b:1::/48`,
///   ...; and inside it `2001::/23` (IETF protocol assignments, Teredo `2001::/32` among them),
///   `2001:db8::/32` and `3fff::/20` (documentation) and `2002::/16` (6to4). Teredo and 6to4
///   are deprecated tunnels whose relays may deliver into a private IPv4 network, and no
///   webhook receiver needs them.
/// - Addresses that stand for an IPv4 address are judged by it: IPv4-mapped
///   (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`, RFC 6052). So `::ffff:127.0.0.1` is
///   not global and `64:ff9b::8.8.8.8` is.
///
/// The function is pure: it looks at the address only, never at the network.
///
/// # Examples
///
/// ```
/// use magic_link::webhooks::is_global;
///
/// assert!(is_global("93.184.215.14".parse()?));
/// assert!(is_global("2606:2800:21f:cb07:6820:80da:af6b:8b2c".parse()?));
/// for blocked in ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "::ffff:127.0.0.1", "fd00::1"] {
///     assert!(!is_global(blocked.parse()?), "{blocked}");
/// }
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = a == 0 // "this network", with the unspecified address
        || a == 10 // private
        || (a == 100 && (b & 0b1100_0000) == 64) // shared address space (CGNAT), 100.64/10
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local
        || (a == 172 && (b & 0b1111_0000) == 16) // private, 172.16/12
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation (TEST-NET-1)
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168) // private
        || (a == 198 && (b & 0b1111_1110) == 18) // benchmarking, 198.18/15
        || (a == 198 && b == 51 && c == 100) // documentation (TEST-NET-2)
        || (a == 203 && b == 0 && c == 113) // documentation (TEST-NET-3)
        || a >= 224; // multicast 224/4; reserved 240/4 with the broadcast address
    !blocked
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return is_global_v4(v4);
    }
    let global_unicast = (s[0] & 0xe000) == 0x2000; // 2000::/3
                                                    // 2001:db8::/32 (documentation) is not inside 2001::/23.
    let blocked = (s[0] == 0x2001 && (s[1] < 0x0200 || s[1] == 0x0db8)) // IETF, Teredo; docs
        || s[0] == 0x2002 // 6to4
        || (s[0] == 0x3fff && s[1] < 0x1000); // documentation, 3fff::/20
    global_unicast && !blocked
}

/// The IPv4 address that an IPv4-mapped (`::ffff:0:0/96`) or NAT64 (`64:ff9b::/96`) address
/// stands for.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let [.., a, b, c, d] = ip.octets();
    let mapped = s[..6] == [0, 0, 0, 0, 0, 0xffff];
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    (mapped || nat64).then(|| Ipv4Addr::new(a, b, c, d))
}

/// `ip`, with an IPv4-mapped IPv6 address as the IPv4 address it stands for (a socket
/// connects to `::ffff:127.0.0.1` as to `127.0.0.1`).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// A block of IP addresses in CIDR notation: `127.0.0.0/8`, `10.1.2.3/32`, `fd00::/8`.
///
/// The address is truncated to its network (`10.1.2.3/8` is `10.0.0.0/8`).
///
/// # Examples
///
/// ```
/// use magic_link::webhooks::IpNetwork;
///
/// let loopback: IpNetwork = "127.0.0.1/8".parse()?;
/// assert_eq!(loopback.to_string(), "127.0.0.0/8");
/// assert!(loopback.contains("127.9.9.9".parse()?));
/// assert!(!loopback.contains("128.0.0.1".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// The network of `addr` with a prefix of `prefix` bits (at most 32 for IPv4, 128 for
    /// IPv6). An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is taken as its IPv4 address, with
    /// the prefix counted from its 97th bit (`::ffff:10.0.0.0/104` is `10.0.0.0/8`).
    ///
    /// # Errors
    ///
    /// [`AllowListError::InvalidNetwork`] when the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, AllowListError> {
        let (addr, prefix) = match (addr, canonical(addr)) {
            (IpAddr::V6(_), v4 @ IpAddr::V4(_)) if prefix >= 96 => (v4, prefix - 96),
            _ => (addr, prefix),
        };
        let network = match addr {
            IpAddr::V4(v4) if prefix <= 32 => IpAddr::V4((u32::from(v4) & mask32(prefix)).into()),
            IpAddr::V6(v6) if prefix <= 128 => {
                IpAddr::V6((u128::from(v6) & mask128(prefix)).into())
            }
            _ => return Err(AllowListError::InvalidNetwork),
        };
        Ok(Self {
            addr: network,
            prefix,
        })
    }

    /// The network with only `addr` in it (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        let addr = canonical(addr);
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    /// The network's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length, in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address is matched as its IPv4
    /// address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpNetwork {
    type Err = AllowListError;

    /// Parses `address/prefix` (`127.0.0.0/8`, `fd00::/8`), or a bare address as a
    /// one-address network.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((addr, prefix)) => {
                let addr = addr.parse().map_err(|_| AllowListError::InvalidNetwork)?;
                // Digits only: `u8::from_str` would also take a leading `+`.
                if prefix.is_empty()
                    || prefix.len() > 3
                    || !prefix.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(AllowListError::InvalidNetwork);
                }
                let prefix = prefix.parse().map_err(|_| AllowListError::InvalidNetwork)?;
                Self::new(addr, prefix)
            }
            None => s
                .parse()
                .map(Self::host)
                .map_err(|_| AllowListError::InvalidNetwork),
        }
    }
}

/// Networks and socket addresses that webhooks may be sent to even though they are not
/// [global](is_global): for development (a receiver on `127.0.0.1`) and for deployments whose
/// receivers are on purpose on a private network.
///
/// A socket address entry (`127.0.0.1:3000`) opens one port of one address; a network entry
/// (`127.0.0.1/32`, `10.0.0.0/8`) opens every port of its addresses. IPv4-mapped IPv6
/// addresses (`::ffff:127.0.0.1`) match as the IPv4 address they stand for.
///
/// # Security
///
/// Every entry is a place a customer's endpoint URL can reach. Name the receivers you need,
/// as narrowly as you can; `0.0.0.0/0` turns the protection off for IPv4.
///
/// # Examples
///
/// A list from configuration, such as an environment variable:
///
/// ```
/// use magic_link::webhooks::AllowList;
///
/// let list: AllowList = "127.0.0.1:3000, 10.20.0.0/16".parse()?;
/// assert!(list.permits("127.0.0.1:3000".parse()?));
/// assert!(!list.permits("127.0.0.1:5432".parse()?)); // another port
/// assert!(list.permits("10.20.1.2:443".parse()?));
/// assert!(list.permits("93.184.215.14:443".parse()?)); // global: always
/// assert!(!list.permits("192.168.1.1:80".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    networks: Vec<IpNetwork>,
    socket_addrs: Vec<SocketAddr>,
}

impl AllowList {
    /// An empty list: only global addresses are permitted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a network: every port of its addresses.
    #[must_use]
    pub fn network(mut self, network: IpNetwork) -> Self {
        if !self.networks.contains(&network) {
            self.networks.push(network);
        }
        self
    }

    /// Adds one port of one address.
    #[must_use]
    pub fn socket_addr(mut self, addr: SocketAddr) -> Self {
        let addr = SocketAddr::new(canonical(addr.ip()), addr.port());
        if !self.socket_addrs.contains(&addr) {
            self.socket_addrs.push(addr);
        }
        self
    }

    /// Adds every entry of `other`.
    #[must_use]
    pub fn extend(self, other: &AllowList) -> Self {
        let with_networks = other.networks.iter().fold(self, |l, n| l.network(*n));
        other
            .socket_addrs
            .iter()
            .fold(with_networks, |l, a| l.socket_addr(*a))
    }

    /// The networks, in the order they were added.
    pub fn networks(&self) -> &[IpNetwork] {
        &self.networks
    }

    /// The socket addresses, in the order they were added.
    pub fn socket_addrs(&self) -> &[SocketAddr] {
        &self.socket_addrs
    }

    /// Whether the list has no entry.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.socket_addrs.is_empty()
    }

    /// Whether `addr` is listed: its address is in a listed network, or it is a listed socket
    /// address.
    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.contains_ip_on(addr.ip(), Some(addr.port()))
    }

    /// Whether a webhook may be sent to `addr`: it is [global](is_global), or it is
    /// [listed](Self::contains).
    pub fn permits(&self, addr: SocketAddr) -> bool {
        is_global(addr.ip()) || self.contains(addr)
    }

    /// Whether `ip` is permitted on `port`; with `port` `None`, through the networks only.
    #[cfg(any(feature = "http", test))]
    pub(crate) fn permits_ip_on(&self, ip: IpAddr, port: Option<u16>) -> bool {
        is_global(ip) || self.contains_ip_on(ip, port)
    }

    fn contains_ip_on(&self, ip: IpAddr, port: Option<u16>) -> bool {
        let ip = canonical(ip);
        self.networks.iter().any(|n| n.contains(ip))
            || port.is_some_and(|port| self.socket_addrs.contains(&SocketAddr::new(ip, port)))
    }
}

impl fmt::Display for AllowList {
    /// The entries, comma-separated, in the form [`FromStr`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let networks = self.networks.iter().map(|n| n as &dyn fmt::Display);
        let addrs = self.socket_addrs.iter().map(|a| a as &dyn fmt::Display);
        for (i, entry) in networks.chain(addrs).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{entry}")?;
        }
        Ok(())
    }
}

impl FromStr for AllowList {
    type Err = AllowListError;

    /// Parses a comma-separated list of entries, each a network in CIDR notation
    /// (`127.0.0.0/8`, `fd00::/8`), an IP address (a one-address network: `127.0.0.1`, `::1`)
    /// or a socket address (`127.0.0.1:3000`, `[::1]:3000`). White space around entries is
    /// ignored; a blank string is the empty list. Host names are not accepted: the list is
    /// about addresses.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Ok(Self::new());
        }
        s.split(',')
            .enumerate()
            .try_fold(Self::new(), |list, (i, entry)| {
                let position = i + 1;
                let entry = entry.trim();
                if entry.is_empty() {
                    Err(AllowListError::EmptyEntry { position })
                } else if entry.contains('/') {
                    let network = entry
                        .parse()
                        .map_err(|_| AllowListError::InvalidEntry { position })?;
                    Ok(list.network(network))
                } else if let Ok(addr) = entry.parse::<SocketAddr>() {
                    Ok(list.socket_addr(addr))
                } else if let Ok(ip) = entry.parse::<IpAddr>() {
                    Ok(list.network(IpNetwork::host(ip)))
                } else {
                    Err(AllowListError::InvalidEntry { position })
                }
            })
    }
}

/// A network or an allowlist that could not be read. The text itself is not repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllowListError {
    /// Not `address/prefix` with an IP address and a prefix no longer than the address.
    #[error("not a network in CIDR notation (address/prefix)")]
    InvalidNetwork,
    /// An entry of a comma-separated list that is not a network, an IP address or a socket
    /// address.
    #[error(
        "allowlist entry {position} is not a network (CIDR), an IP address or a socket address"
    )]
    InvalidEntry {
        /// The entry's position, from 1.
        position: usize,
    },
    /// An empty entry: two commas in a row, or a comma at either end.
    #[error("allowlist entry {position} is empty")]
    EmptyEntry {
        /// The entry's position, from 1.
        position: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classifies_ipv4() {
        for blocked in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.0.9",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_global(ip(blocked)), "{blocked}");
        }
        for global in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.0.3.1",
            "192.88.98.1",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.1",
            "203.0.112.1",
            "223.255.255.255",
        ] {
            assert!(is_global(ip(global)), "{global}");
        }
    }

    #[test]
    fn classifies_ipv6() {
        for blocked in [
            "::",
            "::1",
            "::127.0.0.1", // IPv4-compatible
            "::8.8.8.8",   // IPv4-compatible, deprecated: never
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::ffff:0:7f00:1", // IPv4-translated (SIIT)
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::8.8.8.8", // local-use NAT64
            "100::1",             // discard
            "2001::1",            // Teredo
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",  // benchmarking
            "2001:10::1", // ORCHID
            "2001:1ff::1",
            "2001:db8::1",
            "2002:7f00:1::1", // 6to4 of 127.0.0.1
            "2002:808:808::1",
            "3fff::1",
            "3fff:fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1", // site-local, deprecated
            "ff02::1",
            "ff0e::1",
            "4000::1",
            "5f00::1", // SRv6
            "1fff:ffff::1",
        ] {
            assert!(!is_global(ip(blocked)), "{blocked}");
        }
        for global in [
            "2000::1",
            "2001:200::1",
            "2001:4860:4860::8888",
            "2001:db7:ffff::1",
            "2001:db9::1",
            "2003::1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "3ffe::1",
            "3fef:ffff::1",
            "3fff:1000::1",
            "::ffff:8.8.8.8",
            "::ffff:93.184.215.14",
            "64:ff9b::8.8.8.8",
        ] {
            assert!(is_global(ip(global)), "{global}");
        }
    }

    #[test]
    fn networks_parse_truncate_and_contain() {
        let net: IpNetwork = "10.1.2.3/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.255.0.1")));
        assert!(net.contains(ip("::ffff:10.9.9.9")));
        assert!(!net.contains(ip("11.0.0.0")));
        assert!(!net.contains(ip("::a00:1")));

        let all: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("255.255.255.255")));
        assert!(!all.contains(ip("::1")));

        let one: IpNetwork = "::1".parse().unwrap();
        assert_eq!(one.to_string(), "::1/128");
        assert!(one.contains(ip("::1")));
        assert!(!one.contains(ip("::2")));

        let ula: IpNetwork = "fd00::/8".parse().unwrap();
        assert!(ula.contains(ip("fdff::1")));
        assert!(!ula.contains(ip("fc00::1")));

        let mapped: IpNetwork = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        assert_eq!(
            "::ffff:127.0.0.1".parse::<IpNetwork>().unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!("::ffff:0:0/95".parse::<IpNetwork>().unwrap().prefix(), 95);

        for bad in [
            "",
            "/",
            "10.0.0.0/",
            "/8",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/08a",
            "10.0.0.0/0008",
            "10.0.0/8",
            "127.1/32",
            "localhost/32",
            "10.0.0.0/8/8",
            "10.0.0.0 /8",
        ] {
            assert_eq!(
                bad.parse::<IpNetwork>(),
                Err(AllowListError::InvalidNetwork),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn allow_lists_parse() {
        let list: AllowList = " 127.0.0.1/32 ,[::1]:3000, 10.0.0.0/8,::1, 127.0.0.1:8080 "
            .parse()
            .unwrap();
        assert_eq!(
            list.to_string(),
            "127.0.0.1/32, 10.0.0.0/8, ::1/128, [::1]:3000, 127.0.0.1:8080"
        );
        assert_eq!(list.to_string().parse::<AllowList>().unwrap(), list);
        assert_eq!(list.networks().len(), 3);
        assert_eq!(list.socket_addrs().len(), 2);

        assert_eq!("".parse::<AllowList>().unwrap(), AllowList::new());
        assert!(" \t".parse::<AllowList>().unwrap().is_empty());

        for (bad, err) in [
            (",", AllowListError::EmptyEntry { position: 1 }),
            ("127.0.0.1,", AllowListError::EmptyEntry { position: 2 }),
            ("127.0.0.1,,::1", AllowListError::EmptyEntry { position: 2 }),
            ("localhost", AllowListError::InvalidEntry { position: 1 }),
            (
                "localhost:3000",
                AllowListError::InvalidEntry { position: 1 },
            ),
            (
                "::1, 10.0.0.0/40",
                AllowListError::InvalidEntry { position: 2 },
            ),
            (
                "127.0.0.1:70000",
                AllowListError::InvalidEntry { position: 1 },
            ),
            ("::1:3000x", AllowListError::InvalidEntry { position: 1 }),
            (
                "127.0.0.1 3000",
                AllowListError::InvalidEntry { position: 1 },
            ),
            ("127.1", AllowListError::InvalidEntry { position: 1 }),
            ("0x7f.0.0.1", AllowListError::InvalidEntry { position: 1 }),
        ] {
            assert_eq!(bad.parse::<AllowList>(), Err(err), "{bad:?}");
        }
        let message = "a, b".parse::<AllowList>().unwrap_err().to_string();
        assert_eq!(
            message,
            "allowlist entry 1 is not a network (CIDR), an IP address or a socket address"
        );
    }

    #[test]
    fn allow_lists_permit_listed_and_global_addresses_only() {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let empty = AllowList::new();
        assert!(empty.permits(sa("8.8.8.8:443")));
        assert!(!empty.permits(sa("127.0.0.1:80")));
        assert!(!empty.contains(sa("8.8.8.8:443")), "global is not listed");

        let list = AllowList::new()
            .network("10.0.0.0/8".parse().unwrap())
            .socket_addr(sa("127.0.0.1:3000"))
            .socket_addr(sa("[::ffff:192.168.1.1]:80"));
        assert!(list.permits(sa("10.2.3.4:1")));
        assert!(list.permits(sa("[::ffff:10.2.3.4]:1")));
        assert!(list.permits(sa("127.0.0.1:3000")));
        assert!(list.permits(sa("[::ffff:127.0.0.1]:3000")));
        assert!(!list.permits(sa("127.0.0.1:3001")));
        assert!(!list.permits(sa("127.0.0.2:3000")));
        assert!(!list.permits(sa("[::1]:3000")));
        assert!(list.permits(sa("192.168.1.1:80")));
        assert!(!list.permits(sa("192.168.1.1:443")));

        assert!(list.permits_ip_on(ip("10.0.0.1"), None));
        assert!(!list.permits_ip_on(ip("127.0.0.1"), None));
        assert!(list.permits_ip_on(ip("127.0.0.1"), Some(3000)));

        let merged = AllowList::new().extend(&list).extend(&list);
        assert_eq!(merged, list, "entries are kept once");
    }

    proptest! {
        #[test]
        fn parsers_take_any_text(text in any::<String>()) {
            if let Ok(net) = text.parse::<IpNetwork>() {
                prop_assert_eq!(net.to_string().parse::<IpNetwork>(), Ok(net));
                prop_assert!(net.contains(net.addr()));
            }
            if let Ok(list) = text.parse::<AllowList>() {
                prop_assert_eq!(list.to_string().parse::<AllowList>(), Ok(list));
            }
        }

        #[test]
        fn parsers_take_address_like_text(text in "[0-9a-fA-F:./, \\[\\]x+-]{0,60}") {
            let _ = text.parse::<IpNetwork>();
            if let Ok(list) = text.parse::<AllowList>() {
                prop_assert_eq!(list.to_string().parse::<AllowList>(), Ok(list));
            }
        }

        #[test]
        fn ipv4_forms_in_ipv6_are_judged_by_their_ipv4_address(bits in any::<u32>()) {
            let v4 = Ipv4Addr::from(bits);
            let mapped = v4.to_ipv6_mapped();
            let [a, b, c, d] = v4.octets();
            let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
            let global = is_global(IpAddr::V4(v4));
            prop_assert_eq!(is_global(IpAddr::V6(mapped)), global);
            prop_assert_eq!(is_global(IpAddr::V6(nat64)), global);
            prop_assert!(!is_global(IpAddr::V6(v4.to_ipv6_compatible())));
            // 6to4 (2002:a.b.c.d::/48) is never global.
            let six_to_four = Ipv6Addr::new(0x2002, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]), 0, 0, 0, 0, 1);
            prop_assert!(!is_global(IpAddr::V6(six_to_four)));
        }

        #[test]
        fn networks_contain_exactly_their_prefix(bits in any::<u32>(), other in any::<u32>(), prefix in 0u8..=32) {
            let net = IpNetwork::new(IpAddr::V4(Ipv4Addr::from(bits)), prefix).unwrap();
            let shift = 32 - u32::from(prefix);
            let same_prefix = u64::from(bits) >> shift == u64::from(other) >> shift;
            prop_assert_eq!(net.contains(IpAddr::V4(Ipv4Addr::from(other))), same_prefix);
        }
    }
}
