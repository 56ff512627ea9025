//! Where golive's outbound checks may connect: the egress policy of the probe.
//!
//! A probe carries a customer's admin token, so the address it connects to is decided here and
//! nowhere else. The instance's host is resolved once, every address it resolves to is checked,
//! and the connections go to those checked addresses only (the HTTPS client gets a resolver
//! pinned to them, the SSH check connects to a `SocketAddr`), so a name cannot point somewhere
//! else between the check and the connection.
//!
//! Refused unless the operator allows them (`--probe-allow CIDR`): loopback, link-local (where
//! cloud metadata services answer), unspecified, multicast, broadcast and the reserved IPv4
//! block, whatever the spelling. IPv6 addresses that carry an IPv4 address (mapped,
//! compatible, translated, NAT64, 6to4) are judged by the IPv4 address they carry. Private
//! ranges stay allowed: customers' GitLab lives behind VPC peering and VPNs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

/// The kinds of address golive does not connect to unless the operator allows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedClass {
    Loopback,
    LinkLocal,
    Unspecified,
    Multicast,
    Broadcast,
    Reserved,
    /// A cloud metadata service outside link-local: AWS's IPv6 endpoint `fd00:ec2::254` and
    /// Alibaba Cloud's `100.100.100.200` sit in ranges that otherwise stay allowed.
    CloudMetadata,
}

impl RefusedClass {
    pub fn as_str(&self) -> &'static str {
        match self {
            RefusedClass::Loopback => "loopback",
            RefusedClass::LinkLocal => "link-local",
            RefusedClass::Unspecified => "unspecified",
            RefusedClass::Multicast => "multicast",
            RefusedClass::Broadcast => "broadcast",
            RefusedClass::Reserved => "reserved",
            RefusedClass::CloudMetadata => "cloud metadata",
        }
    }
}

impl fmt::Display for RefusedClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The IPv4 address an IPv6 address carries, for the forms a host may route as IPv4:
/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated but still parsed),
/// IPv4-translated (`::ffff:0:a.b.c.d`), the NAT64 well-known prefix (`64:ff9b::/96`) and 6to4
/// (`2002:AABB:CCDD::/48`).
pub fn embedded_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = address.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses, not IPv4-compatible.
        [0, 0, 0, 0, 0, 0, 0, 0] | [0, 0, 0, 0, 0, 0, 0, 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, high, low, ..] => Some(Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)),
        _ => None,
    }
}

fn ipv4_class(address: Ipv4Addr) -> Option<RefusedClass> {
    let [first, second, ..] = address.octets();
    if address == Ipv4Addr::new(100, 100, 100, 200) {
        Some(RefusedClass::CloudMetadata)
    } else if address == Ipv4Addr::BROADCAST {
        Some(RefusedClass::Broadcast)
    } else if first == 0 {
        // 0.0.0.0/8, "this network": Linux connects 0.0.0.0 to itself.
        Some(RefusedClass::Unspecified)
    } else if first == 127 {
        Some(RefusedClass::Loopback)
    } else if first == 169 && second == 254 {
        Some(RefusedClass::LinkLocal)
    } else if (224..240).contains(&first) {
        Some(RefusedClass::Multicast)
    } else if first >= 240 {
        Some(RefusedClass::Reserved)
    } else {
        None
    }
}

/// Why golive would not connect to `address` without the operator's leave, if it would not.
pub fn refused_class(address: IpAddr) -> Option<RefusedClass> {
    match address {
        IpAddr::V4(v4) => ipv4_class(v4),
        IpAddr::V6(v6) => {
            if v6.is_unspecified() {
                Some(RefusedClass::Unspecified)
            } else if v6.is_loopback() {
                Some(RefusedClass::Loopback)
            } else if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                Some(RefusedClass::LinkLocal)
            } else if v6.is_multicast() {
                Some(RefusedClass::Multicast)
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some(RefusedClass::CloudMetadata)
            } else if let Some(v4) = embedded_ipv4(v6) {
                ipv4_class(v4)
            } else {
                None
            }
        }
    }
}

/// Parses one `--probe-allow` value: a CIDR (`127.0.0.0/8`, `fd00::/8`) or a single address.
pub fn parse_allowance(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is not a CIDR such as 127.0.0.0/8 or an IP address"))
}

/// Why a host could not be resolved (golive's words only: resolver messages are not kept).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("the name does not resolve")]
    NotFound,
    #[error("the name did not resolve in time")]
    TimedOut,
}

/// Turns a host name into addresses. Production asks the system resolver; tests inject a
/// table so that no traffic leaves loopback.
#[async_trait::async_trait]
pub trait HostResolver: Send + Sync {
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError>;
}

/// The system resolver (getaddrinfo, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait::async_trait]
impl HostResolver for SystemResolver {
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        // Names under `.example` and `.invalid` are reserved never to resolve (RFC 2606, RFC
        // 6761): answer so without asking a DNS server, so the demo's and the docs' instances
        // never send a query off the machine.
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if ["example", "invalid"].iter().any(|tld| name == *tld || name.ends_with(&format!(".{tld}"))) {
            return Err(ResolveError::NotFound);
        }
        let found = tokio::net::lookup_host((host, 0)).await.map_err(|_| ResolveError::NotFound)?;
        let addresses: Vec<IpAddr> = found.map(|a| a.ip()).collect();
        if addresses.is_empty() {
            return Err(ResolveError::NotFound);
        }
        Ok(addresses)
    }
}

/// Why a destination was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error(
        "the destination is not allowed: {host} is {address}, a {class} address; golive probes such addresses only where its operator allows them (`golive serve --probe-allow CIDR` for the server's probes and timer, `--probe-allow` for a local `golive probe`)"
    )]
    NotAllowed { host: String, address: IpAddr, class: RefusedClass },
    #[error("DNS: the instance's name {host} does not resolve from Factory's network")]
    Unresolved { host: String },
    #[error("DNS: the instance's name {host} did not resolve in time")]
    ResolveTimedOut { host: String },
}

/// The addresses one probe may connect to: every address its host resolved to, each checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedDestination {
    /// The host as configured (a name, or an address literal as the URL parser normalised it).
    pub host: String,
    pub addresses: Vec<IpAddr>,
}

/// The operator's egress policy: what is allowed beyond the defaults, and how names resolve.
#[derive(Clone)]
pub struct EgressPolicy {
    allowed: Vec<IpNet>,
    resolver: Arc<dyn HostResolver>,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        EgressPolicy { allowed: Vec::new(), resolver: Arc::new(SystemResolver) }
    }
}

impl fmt::Debug for EgressPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressPolicy").field("allowed", &self.allowed).finish_non_exhaustive()
    }
}

impl EgressPolicy {
    /// The defaults, widened by `allowed` (`--probe-allow`).
    pub fn allowing(allowed: Vec<IpNet>) -> Self {
        EgressPolicy { allowed, ..Default::default() }
    }

    /// The same policy with another resolver (tests inject a table).
    pub fn with_resolver(mut self, resolver: Arc<dyn HostResolver>) -> Self {
        self.resolver = resolver;
        self
    }

    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether golive may connect to `address`; if not, why. An allowance matches the address
    /// as written or the IPv4 address it carries.
    pub fn check(&self, address: IpAddr) -> Result<(), RefusedClass> {
        let Some(class) = refused_class(address) else { return Ok(()) };
        let carried = match address {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let allowed =
            self.allowed.iter().any(|net| net.contains(&address) || carried.is_some_and(|v4| net.contains(&v4)));
        if allowed {
            Ok(())
        } else {
            Err(class)
        }
    }

    /// Resolves `host` once (an address literal is not resolved) and checks every address.
    /// Refused addresses are dropped, never connected to; the destination is refused when no
    /// address is left (naming the first refused one).
    pub async fn resolve_checked(
        &self,
        host: &url::Host<&str>,
        timeout: std::time::Duration,
    ) -> Result<CheckedDestination, EgressError> {
        let (name, addresses) = match host {
            url::Host::Ipv4(v4) => (v4.to_string(), vec![IpAddr::V4(*v4)]),
            url::Host::Ipv6(v6) => (format!("[{v6}]"), vec![IpAddr::V6(*v6)]),
            url::Host::Domain(domain) => {
                let name = (*domain).to_owned();
                let found = match tokio::time::timeout(timeout, self.resolver.resolve(domain)).await {
                    Ok(Ok(found)) if !found.is_empty() => found,
                    Ok(Ok(_)) | Ok(Err(ResolveError::NotFound)) => return Err(EgressError::Unresolved { host: name }),
                    Ok(Err(ResolveError::TimedOut)) | Err(_) => {
                        return Err(EgressError::ResolveTimedOut { host: name })
                    }
                };
                (name, found)
            }
        };
        let mut checked: Vec<IpAddr> = Vec::with_capacity(addresses.len());
        let mut first_refused = None;
        for address in addresses {
            match self.check(address) {
                Ok(()) if !checked.contains(&address) => checked.push(address),
                Ok(()) => {}
                Err(class) => {
                    first_refused.get_or_insert((address, class));
                }
            }
        }
        match first_refused {
            Some((address, class)) if checked.is_empty() => Err(EgressError::NotAllowed { host: name, address, class }),
            _ => Ok(CheckedDestination { host: name, addresses: checked }),
        }
    }
}

/// The HTTPS client's resolver for one probe: the checked host answers with the checked
/// addresses, and any other name is refused (no redirect is followed, so none is expected).
pub struct PinnedResolver {
    pub host: String,
    pub addresses: Vec<IpAddr>,
}

impl reqwest::dns::Resolve for PinnedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let answer: Result<reqwest::dns::Addrs, Box<dyn std::error::Error + Send + Sync>> =
            if name.as_str().eq_ignore_ascii_case(&self.host) {
                // Port 0: the URL's port applies.
                let addresses: Vec<std::net::SocketAddr> =
                    self.addresses.iter().map(|ip| std::net::SocketAddr::new(*ip, 0)).collect();
                Ok(Box::new(addresses.into_iter()))
            } else {
                Err("golive resolves only the checked instance host".into())
            };
        Box::pin(std::future::ready(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    /// Names from a table; anything else does not resolve. Sends no traffic.
    struct TableResolver(HashMap<&'static str, Vec<IpAddr>>);

    #[async_trait::async_trait]
    impl HostResolver for TableResolver {
        async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
            self.0.get(host).cloned().ok_or(ResolveError::NotFound)
        }
    }

    fn table() -> Arc<dyn HostResolver> {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        Arc::new(TableResolver(HashMap::from([
            ("localhost", vec![ip("127.0.0.1"), ip("::1")]),
            ("metadata.google.internal", vec![ip("169.254.169.254")]),
            ("metadata.example", vec![ip("fd00:ec2::254")]),
            ("mapped-metadata.example", vec![ip("::ffff:169.254.169.254")]),
            ("half-loopback.example", vec![ip("10.0.0.5"), ip("127.0.0.1")]),
            ("zero.example", vec![ip("0.0.0.0")]),
            ("gitlab.vpc.example", vec![ip("10.20.30.40")]),
            ("gitlab.vpn.example", vec![ip("172.16.5.4"), ip("192.168.1.10")]),
            ("gitlab.ula.example", vec![ip("fd12:3456:789a::1")]),
            ("gitlab.example.com", vec![ip("203.0.113.10"), ip("2001:db8::10")]),
            ("empty.example", vec![]),
        ])))
    }

    async fn verdict(policy: &EgressPolicy, url: &str) -> Result<Vec<IpAddr>, EgressError> {
        let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let host = parsed.host().unwrap_or_else(|| panic!("{url}: no host"));
        policy.resolve_checked(&host, Duration::from_secs(1)).await.map(|d| d.addresses)
    }

    const REFUSED: [(&str, RefusedClass); 32] = [
        ("http://127.0.0.1/", RefusedClass::Loopback),
        ("http://127.1.2.3:8080/", RefusedClass::Loopback),
        ("http://2130706433/", RefusedClass::Loopback),
        ("http://0177.0.0.1/", RefusedClass::Loopback),
        ("http://0x7f.1/", RefusedClass::Loopback),
        ("http://0x7f000001/", RefusedClass::Loopback),
        ("http://127.1/", RefusedClass::Loopback),
        ("http://017700000001/", RefusedClass::Loopback),
        ("http://[::1]/", RefusedClass::Loopback),
        ("http://[0:0:0:0:0:0:0:1]/", RefusedClass::Loopback),
        ("http://[::ffff:127.0.0.1]/", RefusedClass::Loopback),
        ("http://[::ffff:7f00:1]/", RefusedClass::Loopback),
        ("http://[::127.0.0.1]/", RefusedClass::Loopback),
        ("http://[64:ff9b::127.0.0.1]/", RefusedClass::Loopback),
        ("http://[2002:7f00:1::]/", RefusedClass::Loopback),
        ("https://localhost/", RefusedClass::Loopback),
        ("https://metadata.example/", RefusedClass::CloudMetadata),
        ("http://[fd00:ec2::254]/", RefusedClass::CloudMetadata),
        ("http://100.100.100.200/", RefusedClass::CloudMetadata),
        ("http://169.254.169.254/latest/meta-data/", RefusedClass::LinkLocal),
        ("http://2852039166/", RefusedClass::LinkLocal),
        ("http://0xa9.0xfe.0xa9.0xfe/", RefusedClass::LinkLocal),
        ("http://[::ffff:169.254.169.254]/", RefusedClass::LinkLocal),
        ("http://[fe80::1]/", RefusedClass::LinkLocal),
        ("https://metadata.google.internal/", RefusedClass::LinkLocal),
        ("https://mapped-metadata.example/", RefusedClass::LinkLocal),
        ("http://0.0.0.0/", RefusedClass::Unspecified),
        ("http://0/", RefusedClass::Unspecified),
        ("http://[::]/", RefusedClass::Unspecified),
        ("http://224.0.0.1/", RefusedClass::Multicast),
        ("http://[ff02::1]/", RefusedClass::Multicast),
        ("http://255.255.255.255/", RefusedClass::Broadcast),
    ];

    #[tokio::test]
    async fn reserved_names_are_not_found_without_asking_a_dns_server() {
        for name in ["gitlab.acme.example", "GITLAB.ACME.EXAMPLE.", "example", "x.invalid"] {
            assert!(matches!(SystemResolver.resolve(name).await, Err(ResolveError::NotFound)), "{name}");
        }
    }

    #[tokio::test]
    async fn every_spelling_of_a_refused_address_is_refused() {
        let policy = EgressPolicy::default().with_resolver(table());
        for (url, class) in REFUSED {
            match verdict(&policy, url).await {
                Err(EgressError::NotAllowed { class: refused, .. }) => assert_eq!(refused, class, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        assert!(matches!(verdict(&policy, "https://zero.example/").await, Err(EgressError::NotAllowed { .. })));
        // A name that resolves to a refused address among allowed ones: the refused one is dropped.
        let half = verdict(&policy, "https://half-loopback.example/").await.unwrap();
        assert_eq!(half, vec!["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert!(matches!(verdict(&policy, "http://240.0.0.1/").await, Err(EgressError::NotAllowed { .. })));
    }

    #[tokio::test]
    async fn private_and_public_addresses_stay_allowed() {
        let policy = EgressPolicy::default().with_resolver(table());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (url, expected) in [
            ("https://10.1.2.3/", vec![ip("10.1.2.3")]),
            ("https://172.31.255.1:8443/", vec![ip("172.31.255.1")]),
            ("https://192.168.0.10/", vec![ip("192.168.0.10")]),
            ("https://[fd00::1]/", vec![ip("fd00::1")]),
            ("https://[fc00::1]/", vec![ip("fc00::1")]),
            ("https://100.64.0.1/", vec![ip("100.64.0.1")]),
            ("https://gitlab.vpc.example/", vec![ip("10.20.30.40")]),
            ("https://gitlab.vpn.example/", vec![ip("172.16.5.4"), ip("192.168.1.10")]),
            ("https://gitlab.ula.example/", vec![ip("fd12:3456:789a::1")]),
            ("https://gitlab.example.com/", vec![ip("203.0.113.10"), ip("2001:db8::10")]),
            ("https://[fd00:ec2::253]/", vec![ip("fd00:ec2::253")]),
            ("https://[::ffff:10.0.0.1]/", vec![ip("::ffff:10.0.0.1")]),
        ] {
            assert_eq!(verdict(&policy, url).await.unwrap_or_else(|e| panic!("{url}: {e}")), expected, "{url}");
        }
    }

    #[tokio::test]
    async fn names_that_do_not_resolve_are_named_as_dns_failures() {
        let policy = EgressPolicy::default().with_resolver(table());
        for url in ["https://nowhere.example/", "https://empty.example/"] {
            assert!(matches!(verdict(&policy, url).await, Err(EgressError::Unresolved { .. })), "{url}");
        }
    }

    #[tokio::test]
    async fn the_operator_widens_the_policy_and_only_by_what_they_name() {
        let allow = vec![parse_allowance("127.0.0.0/8").unwrap(), parse_allowance("169.254.169.254").unwrap()];
        let policy = EgressPolicy::allowing(allow).with_resolver(table());
        for url in [
            "http://127.0.0.1/",
            "http://0x7f.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://169.254.169.254/",
            "http://[::ffff:169.254.169.254]/",
            "https://metadata.google.internal/",
        ] {
            assert!(verdict(&policy, url).await.is_ok(), "{url}");
        }
        // IPv6 loopback and other link-local addresses stay refused.
        for url in ["http://[::1]/", "http://169.254.169.253/", "http://[fe80::1]/"] {
            assert!(matches!(verdict(&policy, url).await, Err(EgressError::NotAllowed { .. })), "{url}");
        }
        // `localhost` is 127.0.0.1 and ::1: only the allowed address is kept.
        assert_eq!(verdict(&policy, "https://localhost/").await.unwrap(), vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
    }

    /// The system resolver answers `localhost` from the hosts file: no traffic leaves the machine.
    #[tokio::test]
    async fn the_system_resolver_s_localhost_is_refused() {
        let policy = EgressPolicy::default();
        for url in ["https://localhost/", "https://LOCALHOST/"] {
            assert!(matches!(verdict(&policy, url).await, Err(EgressError::NotAllowed { .. })), "{url}");
        }
    }

    #[test]
    fn allowances_are_cidrs_or_addresses() {
        assert_eq!(parse_allowance("127.0.0.0/8").unwrap().to_string(), "127.0.0.0/8");
        assert_eq!(parse_allowance(" ::1 ").unwrap().to_string(), "::1/128");
        assert_eq!(parse_allowance("10.0.0.1").unwrap().to_string(), "10.0.0.1/32");
        for bad in ["", "localhost", "127.0.0.0/33", "10.0.0.0/8/8"] {
            assert!(parse_allowance(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_refusal_names_the_host_the_address_and_the_class() {
        let error = EgressError::NotAllowed {
            host: "localhost".into(),
            address: "127.0.0.1".parse().unwrap(),
            class: RefusedClass::Loopback,
        };
        let text = error.to_string();
        assert!(
            text.starts_with("the destination is not allowed: localhost is 127.0.0.1, a loopback address"),
            "{text}"
        );
    }
}
