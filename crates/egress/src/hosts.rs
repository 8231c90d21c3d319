//! An action's `allowed_hosts`: exact names, or `*.example.com` for any name below it.

/// True when `allowed` is empty (no narrowing) or `host` matches one of its patterns.
pub fn host_allowed(allowed: &[String], host: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allowed.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => host == pattern,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard_patterns() {
        let allowed = vec!["api.example.com".to_string(), "*.shop.io".to_string()];
        assert!(host_allowed(&allowed, "api.example.com"));
        assert!(host_allowed(&allowed, "API.Example.com."));
        assert!(host_allowed(&allowed, "eu.shop.io"));
        assert!(host_allowed(&allowed, "a.b.shop.io"));
        assert!(!host_allowed(&allowed, "shop.io"));
        assert!(!host_allowed(&allowed, "evilshop.io"));
        assert!(!host_allowed(&allowed, "example.com"));
        assert!(!host_allowed(&allowed, "api.example.com.evil.net"));
        assert!(host_allowed(&[], "anything.net"));
    }
}
