//! Fetching client URLs (input photos, webhook endpoints) without reaching inside: every address a URL resolves
//! to (and every redirect's) must be public, the connection goes to the address
//! that was checked (reqwest connects to what our resolver returns, so DNS
//! rebinding has nothing to swap), no proxy, no credentials in URLs, and one
//! uniform error whatever went wrong, so the gateway cannot be used to scan a
//! network.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use atelier_core::settings::FetchSettings;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Who the gateway may fetch from.
#[derive(Debug, Clone)]
pub struct AddressPolicy {
    allow_private: bool,
    /// `host` (any port) or `host:port`, lower-case.
    allowed: Arc<HashSet<String>>,
}

/// Why a URL may not be fetched (for the logs; the client sees one message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("only http and https URLs are fetched")]
    Scheme,
    #[error("credentials in URLs are not sent")]
    Userinfo,
    #[error("the URL has no host")]
    NoHost,
    #[error("{0} is not a public address")]
    Private(IpAddr),
    #[error("{0} resolves to no public address")]
    NoPublicAddress(String),
}

impl AddressPolicy {
    pub fn new(settings: &FetchSettings) -> Self {
        Self {
            allow_private: settings.allow_private_networks,
            allowed: Arc::new(
                settings
                    .allowed_hosts
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
            ),
        }
    }

    /// Whether `host` (with `port`) is an exception to the private-address rule.
    fn excepted(&self, host: &str, port: Option<u16>) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.allowed.contains(&host) || port.is_some_and(|p| self.allowed.contains(&format!("{host}:{p}")))
    }

    /// Whether a host name's addresses may be private (an exception names it,
    /// with or without a port).
    fn name_excepted(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.allow_private
            || self
                .allowed
                .iter()
                .any(|entry| entry == &name || entry.rsplit_once(':').is_some_and(|(h, _)| h == name))
    }

    /// Checks a URL before it is fetched, and every redirect's target: the
    /// scheme, no userinfo, and an IP-literal host (names are checked when they
    /// resolve).
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Userinfo);
        }
        let host = url.host().ok_or(Refusal::NoHost)?;
        let ip = match host {
            url::Host::Ipv4(v4) => IpAddr::V4(v4),
            url::Host::Ipv6(v6) => IpAddr::V6(v6),
            url::Host::Domain(_) => return Ok(()),
        };
        if self.allow_private || is_public(ip) || self.excepted(&ip.to_string(), url.port_or_known_default())
        {
            Ok(())
        } else {
            Err(Refusal::Private(ip))
        }
    }
}

/// The DNS resolver of the fetching client: resolves with the system's
/// resolver and keeps the public addresses only.
#[derive(Debug, Clone)]
pub struct PublicResolver {
    policy: AddressPolicy,
}

impl PublicResolver {
    pub fn new(policy: AddressPolicy) -> Self {
        Self { policy }
    }
}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let name = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let excepted = policy.name_excepted(&name);
            let public: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| excepted || is_public(addr.ip()))
                .collect();
            if public.is_empty() {
                return Err(
                    Box::new(Refusal::NoPublicAddress(name)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// A client that fetches only what `policy` allows, with `settings`' limits.
pub fn client(
    settings: &FetchSettings,
    policy: &AddressPolicy,
    user_agent: &str,
) -> reqwest::Result<reqwest::Client> {
    let redirects = settings.max_redirects;
    let redirect_policy = policy.clone();
    guarded(settings, policy, user_agent)
        .timeout(Duration::from_millis(settings.timeout_ms))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > redirects {
                return attempt.error("too many redirects");
            }
            match redirect_policy.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        }))
        .build()
}

/// A client that posts only where `policy` allows and never follows a
/// redirect (a webhook endpoint answers for itself, as Standard Webhooks
/// says). Each request sets its own timeout.
pub fn poster(
    settings: &FetchSettings,
    policy: &AddressPolicy,
    user_agent: &str,
) -> reqwest::Result<reqwest::Client> {
    guarded(settings, policy, user_agent)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// What both clients share: the public-only resolver, no proxy, the connect timeout.
fn guarded(settings: &FetchSettings, policy: &AddressPolicy, user_agent: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .no_proxy()
        .dns_resolver(Arc::new(PublicResolver::new(policy.clone())))
        .user_agent(user_agent)
}

/// `url` as it may be shown, logged or stored: scheme, host and path; no
/// credentials, port, query or fragment.
pub fn shown(url: &Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    )
}

/// Whether `ip` is a public unicast address (anything a request from the
/// internet could legitimately point us at).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || a == 0 // "this network"
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata included
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || ip.is_multicast()
        || a >= 240 // reserved, and broadcast
        || ip.is_broadcast())
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: hides an IPv4 address
        || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible, and ::/96 generally
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (::ffff:a.b.c.d),
/// NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let octets = ip.octets();
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]));
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow_private: bool, allowed: &[&str]) -> AddressPolicy {
        AddressPolicy {
            allow_private,
            allowed: Arc::new(allowed.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn private_and_special_addresses_are_refused() {
        for bad in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
        ] {
            let ip: IpAddr = bad.parse().expect(bad);
            assert!(!is_public(ip), "{bad} must be refused");
        }
        for good in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:2800:220:1:248:1893:25c8:1946",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = good.parse().expect(good);
            assert!(is_public(ip), "{good} is public");
        }
    }

    #[test]
    fn urls_are_checked_in_every_spelling() {
        let p = policy(false, &[]);
        for bad in [
            "http://127.0.0.1:5432/",
            "http://2130706433:8080/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://169.254.169.254/latest/meta-data/",
        ] {
            let url = Url::parse(bad).expect(bad);
            assert!(matches!(p.check_url(&url), Err(Refusal::Private(_))), "{bad}");
        }
        let creds = Url::parse("http://user:pass@93.184.216.34/a.jpg").expect("url");
        assert_eq!(p.check_url(&creds), Err(Refusal::Userinfo));
        let ftp = Url::parse("ftp://93.184.216.34/a.jpg").expect("url");
        assert_eq!(p.check_url(&ftp), Err(Refusal::Scheme));
        assert!(
            p.check_url(&Url::parse("https://shop.example/a.jpg").expect("url"))
                .is_ok()
        );
    }

    #[test]
    fn exceptions_name_a_host_or_a_host_and_port() {
        let p = policy(false, &["127.0.0.1:9000", "images.internal"]);
        assert!(
            p.check_url(&Url::parse("http://127.0.0.1:9000/a.jpg").expect("url"))
                .is_ok()
        );
        assert!(
            p.check_url(&Url::parse("http://127.0.0.1:9001/a.jpg").expect("url"))
                .is_err()
        );
        assert!(p.name_excepted("images.internal"));
        assert!(!p.name_excepted("localhost"));
        assert!(
            policy(true, &[])
                .check_url(&Url::parse("http://10.0.0.1/").expect("url"))
                .is_ok()
        );
    }

    #[test]
    fn shown_urls_carry_no_secrets() {
        let url = Url::parse("https://u:p@shop.example:8443/img/a.jpg?token=s3cret#x").expect("url");
        assert_eq!(shown(&url), "https://shop.example/img/a.jpg");
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused() {
        let resolver = PublicResolver::new(policy(false, &[]));
        let name: Name = "localhost".parse().expect("name");
        assert!(resolver.resolve(name).await.is_err());
        let allowed = PublicResolver::new(policy(false, &["localhost"]));
        let name: Name = "localhost".parse().expect("name");
        assert!(allowed.resolve(name).await.is_ok());
    }
}
