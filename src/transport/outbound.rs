//! Where Switchboard may connect on a tenant's behalf. A channel's host is typed by a
//! tenant user, so by default it must resolve to public addresses only: no loopback, private,
//! link-local (cloud metadata at 169.254.169.254), CGNAT, multicast or reserved ranges. The
//! check runs after DNS resolution and the caller connects to exactly the addresses checked,
//! so a name that resolves to a private address (or changes between check and connect) gets
//! nowhere. The operator may allow hosts or networks (`SWITCHBOARD_OUTBOUND_ALLOW`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error(
        "`{host}` resolves to {address}, a {kind} address; connections there are not allowed (an operator can allow it with SWITCHBOARD_OUTBOUND_ALLOW)"
    )]
    Forbidden {
        host: String,
        address: IpAddr,
        kind: &'static str,
    },
    #[error("`{host}` does not resolve: {reason}")]
    Unresolvable { host: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    Host(String),
    Net(IpNet),
}

/// The policy: public addresses always; listed hosts and networks besides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allowed: Vec<Allowed>,
}

impl OutboundPolicy {
    /// Parses `SWITCHBOARD_OUTBOUND_ALLOW`: comma-separated host names, IP addresses or CIDRs.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Ok(net) = item.parse::<IpNet>() {
                allowed.push(Allowed::Net(net));
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                allowed.push(Allowed::Net(IpNet::from(ip)));
            } else if item
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            {
                allowed.push(Allowed::Host(
                    item.trim_end_matches('.').to_ascii_lowercase(),
                ));
            } else {
                return Err(format!("`{item}` is not a host, an IP address or a CIDR"));
            }
        }
        Ok(Self { allowed })
    }

    /// Whether the operator listed this host name.
    pub fn allows_host(&self, host: &str) -> bool {
        self.host_allowed(host)
    }

    /// Whether the operator listed this host or a network holding this address.
    pub fn allows(&self, host: &str, ip: IpAddr) -> bool {
        self.host_allowed(host) || self.address_allowed(ip)
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed
            .iter()
            .any(|a| matches!(a, Allowed::Host(h) if *h == host))
    }

    fn address_allowed(&self, ip: IpAddr) -> bool {
        self.allowed
            .iter()
            .any(|a| matches!(a, Allowed::Net(n) if n.contains(&ip)))
    }

    /// Checks one resolved address for a host.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), OutboundError> {
        if self.host_allowed(host) || self.address_allowed(ip) {
            return Ok(());
        }
        match non_public(ip) {
            None => Ok(()),
            Some(kind) => Err(OutboundError::Forbidden {
                host: host.to_owned(),
                address: ip,
                kind,
            }),
        }
    }

    /// Resolves `host` and returns the addresses to connect to, every one of them checked.
    /// Any forbidden address refuses the whole host: a name that mixes public and private
    /// addresses is not one to trust.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, OutboundError> {
        let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| OutboundError::Unresolvable {
                    host: host.to_owned(),
                    reason: e.to_string(),
                })?
                .collect(),
        };
        if addresses.is_empty() {
            return Err(OutboundError::Unresolvable {
                host: host.to_owned(),
                reason: "no addresses".into(),
            });
        }
        for address in &addresses {
            self.check(host, address.ip())?;
        }
        Ok(addresses)
    }
}

/// Why an address is not public, if it is not.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            non_public_v6(v6)
        }
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let ranges: &[([u8; 4], u8, &'static str)] = &[
        ([0, 0, 0, 0], 8, "unspecified"),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "shared (CGNAT)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local (cloud metadata)"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "reserved (IETF)"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    ranges
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, kind)| *kind)
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if first & 0xfe00 == 0xfc00 {
        Some("private (unique local)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if first & 0xff00 == 0xff00 {
        Some("multicast")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("documentation")
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        // NAT64 embeds an IPv4 address; judge that one.
        let s = ip.segments();
        non_public_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_special_addresses_are_refused_by_default() {
        let policy = OutboundPolicy::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::",
        ] {
            assert!(policy.check("h", ip(bad)).is_err(), "{bad} allowed");
        }
        for good in [
            "8.8.8.8",
            "172.32.0.1",
            "2607:f8b0:4004:c1b::6c",
            "64:ff9b::808:808",
        ] {
            assert!(policy.check("h", ip(good)).is_ok(), "{good} refused");
        }
    }

    #[test]
    fn the_operator_can_allow_networks_and_hosts() {
        let policy = OutboundPolicy::parse("127.0.0.0/8, smtp.internal.corp, 10.0.0.5").unwrap();
        assert!(policy.check("localhost", ip("127.0.0.1")).is_ok());
        assert!(
            policy
                .check("smtp.internal.corp", ip("192.168.1.1"))
                .is_ok()
        );
        assert!(policy.check("x", ip("10.0.0.5")).is_ok());
        assert!(policy.check("x", ip("10.0.0.6")).is_err());
        assert!(OutboundPolicy::parse("not a host!").is_err());
    }

    #[tokio::test]
    async fn names_are_checked_after_resolution() {
        let policy = OutboundPolicy::default();
        let err = policy.resolve("localhost", 25).await.unwrap_err();
        assert!(
            matches!(
                err,
                OutboundError::Forbidden {
                    kind: "loopback",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("SWITCHBOARD_OUTBOUND_ALLOW"));
        let allowed = OutboundPolicy::parse("127.0.0.0/8,::1").unwrap();
        let addresses = allowed.resolve("localhost", 25).await.unwrap();
        assert!(
            addresses
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 25)
        );
    }
}
