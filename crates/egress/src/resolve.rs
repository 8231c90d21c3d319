//! Name resolution under the address policy, wired into the HTTP client.
//!
//! The client connects only to addresses this resolver returns, and it returns only addresses
//! the policy allows: the check and the connection use the same addresses, so a name that
//! re-resolves to an internal address between the two (DNS rebinding) cannot get through.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::policy::{AddressPolicy, Denied};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Turns a host name into addresses.
pub trait NameResolver: Send + Sync + 'static {
    fn lookup(&self, host: String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl NameResolver for SystemResolver {
    fn lookup(&self, host: String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// Fixed answers, for tests: a name maps to the addresses given, anything else fails.
#[derive(Debug, Default, Clone)]
pub struct StaticResolver {
    entries: HashMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    pub fn with(mut self, host: &str, addrs: &[IpAddr]) -> Self {
        self.entries
            .insert(host.to_ascii_lowercase(), addrs.to_vec());
        self
    }
}

impl NameResolver for StaticResolver {
    fn lookup(&self, host: String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let found = self.entries.get(&host.to_ascii_lowercase()).cloned();
        Box::pin(async move {
            found.ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no such host: {host}"),
                )
            })
        })
    }
}

/// The failure of a lookup under the policy; found again in the client's error chain.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{host}: {source}")]
    Denied { host: String, source: Denied },
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        host: String,
        source: std::io::Error,
    },
    #[error("cannot resolve {host}: no addresses")]
    Empty { host: String },
}

/// Adapts a [`NameResolver`] and the [`AddressPolicy`] to the client. If any address of a
/// name is denied, the whole name is: an answer mixing public and internal addresses is
/// what a rebinding attack looks like.
pub(crate) struct PolicyResolve {
    pub(crate) resolver: Arc<dyn NameResolver>,
    pub(crate) policy: Arc<AddressPolicy>,
}

impl Resolve for PolicyResolve {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.resolver.clone();
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs =
                resolver
                    .lookup(host.clone())
                    .await
                    .map_err(|source| ResolveError::Lookup {
                        host: host.clone(),
                        source,
                    })?;
            if addrs.is_empty() {
                return Err(ResolveError::Empty { host }.into());
            }
            for ip in &addrs {
                policy.check(*ip).map_err(|source| ResolveError::Denied {
                    host: host.clone(),
                    source,
                })?;
            }
            let addrs: Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}
