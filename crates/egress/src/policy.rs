//! Which addresses a request may reach: everything public, nothing internal (SPEC §7).
//!
//! Checked on every address a name resolves to and on every IP literal, before a connection
//! is made, on every redirect hop. `egress.allow_private_cidrs` opens chosen ranges.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is refused: the rule's name (as metrics and messages show it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyRule {
    Unspecified,
    Loopback,
    Private,
    SharedAddressSpace,
    LinkLocal,
    Multicast,
    Broadcast,
    Documentation,
    Benchmarking,
    Reserved,
    UniqueLocal,
    SiteLocal,
    Discard,
}

impl DenyRule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::SharedAddressSpace => "cgnat",
            Self::LinkLocal => "link-local",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::Reserved => "reserved",
            Self::UniqueLocal => "unique-local",
            Self::SiteLocal => "site-local",
            Self::Discard => "discard",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Unspecified => "an unspecified address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private (RFC 1918) address",
            Self::SharedAddressSpace => "a carrier-grade NAT (RFC 6598) address",
            Self::LinkLocal => "a link-local address (cloud metadata services live here)",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Documentation => "a documentation address",
            Self::Benchmarking => "a benchmarking address",
            Self::Reserved => "a reserved address",
            Self::UniqueLocal => "a unique-local IPv6 address",
            Self::SiteLocal => "a site-local IPv6 address",
            Self::Discard => "a discard-only IPv6 address",
        }
    }
}

/// A refused address, with the message a script's `ConnectionError` carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "egress denied: {ip} is {what} (rule `{rule}`); an operator can open it with \
     egress.allow_private_cidrs = [\"{cidr}\"] in worker.toml",
    rule = rule.as_str(), what = rule.describe()
)]
pub struct Denied {
    pub ip: IpAddr,
    pub rule: DenyRule,
    cidr: String,
}

fn v4_rule(ip: Ipv4Addr) -> Option<DenyRule> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_broadcast() => DenyRule::Broadcast,
        (0, _, _) => DenyRule::Unspecified,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => DenyRule::Private,
        (100, 64..=127, _) => DenyRule::SharedAddressSpace,
        (127, _, _) => DenyRule::Loopback,
        (169, 254, _) => DenyRule::LinkLocal,
        (192, 0, 0) => DenyRule::Reserved,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => DenyRule::Documentation,
        (198, 18..=19, _) => DenyRule::Benchmarking,
        (224..=239, _, _) => DenyRule::Multicast,
        (240..=255, _, _) => DenyRule::Reserved,
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, _, _] if ip.segments()[6] != 0 => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

fn v6_rule(ip: Ipv6Addr) -> Option<DenyRule> {
    if ip.is_unspecified() {
        return Some(DenyRule::Unspecified);
    }
    if ip.is_loopback() {
        return Some(DenyRule::Loopback);
    }
    let s = ip.segments();
    Some(match s[0] {
        0xfc00..=0xfdff => DenyRule::UniqueLocal,
        0xfe80..=0xfebf => DenyRule::LinkLocal,
        0xfec0..=0xfeff => DenyRule::SiteLocal,
        0xff00..=0xffff => DenyRule::Multicast,
        0x2001 if s[1] == 0x0db8 => DenyRule::Documentation,
        0x0100 if s[1..4] == [0, 0, 0] => DenyRule::Discard,
        _ => return None,
    })
}

/// The deny list with the operator's exceptions.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allow: Vec<IpNet>,
}

impl AddressPolicy {
    pub fn new(allow_private_cidrs: Vec<IpNet>) -> Self {
        Self {
            allow: allow_private_cidrs,
        }
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&ip))
    }

    /// `Ok` for an address a request may reach.
    pub fn check(&self, ip: IpAddr) -> Result<(), Denied> {
        if self.allowed(ip) {
            return Ok(());
        }
        let (rule, target) = match ip {
            IpAddr::V4(v4) => (v4_rule(v4), ip),
            IpAddr::V6(v6) => match embedded_v4(v6) {
                // The v6 forms of an IPv4 address follow the rules of that address,
                // exceptions included.
                Some(v4) if self.allowed(IpAddr::V4(v4)) => return Ok(()),
                Some(v4) => (v4_rule(v4).or_else(|| v6_rule(v6)), IpAddr::V4(v4)),
                None => (v6_rule(v6), ip),
            },
        };
        match rule {
            None => Ok(()),
            Some(rule) => {
                let prefix = if target.is_ipv4() { 32 } else { 128 };
                Err(Denied {
                    ip,
                    rule,
                    cidr: format!("{target}/{prefix}"),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(policy: &AddressPolicy, ip: &str) -> Option<&'static str> {
        policy
            .check(ip.parse().unwrap())
            .err()
            .map(|d| d.rule.as_str())
    }

    #[test]
    fn internal_addresses_are_denied_by_rule() {
        let p = AddressPolicy::default();
        for (ip, expected) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("10.0.0.1", "private"),
            ("172.16.5.4", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "cgnat"),
            ("169.254.169.254", "link-local"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.10", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.1.2.3", "private"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:7f00:1::", "loopback"),
            ("fd00:ec2::254", "unique-local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
        ] {
            assert_eq!(rule(&p, ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let p = AddressPolicy::default();
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(rule(&p, ip), None, "{ip}");
        }
    }

    #[test]
    fn allow_private_cidrs_opens_ranges_and_their_v6_forms() {
        let p = AddressPolicy::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.1.0.0/16".parse().unwrap(),
        ]);
        assert_eq!(rule(&p, "127.0.0.1"), None);
        assert_eq!(rule(&p, "::ffff:127.0.0.1"), None);
        assert_eq!(rule(&p, "10.1.2.3"), None);
        assert_eq!(rule(&p, "10.2.0.1"), Some("private"));
        assert_eq!(rule(&p, "::1"), Some("loopback"));
    }

    #[test]
    fn the_message_names_the_rule_and_the_setting() {
        let err = AddressPolicy::default()
            .check("::ffff:169.254.169.254".parse().unwrap())
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("rule `link-local`"), "{text}");
        assert!(
            text.contains("egress.allow_private_cidrs = [\"169.254.169.254/32\"]"),
            "{text}"
        );
    }
}
