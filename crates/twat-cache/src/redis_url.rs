//! Where a [`crate::RedisStore`] connects: one server (`redis://`, `rediss://`,
//! `unix://`) or a Redis Cluster (`redis+cluster://host:port,host:port`), parsed once,
//! with the credentials kept out of everything that is shown.

use crate::Error;

const ACCEPTED: &str = "a redis://, rediss://, unix:// or redis+cluster://host:port,host:port URL";

/// A parsed Redis address.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// One URL per node the client connects to first (one for a single server).
    pub nodes: Vec<String>,
    /// A Redis Cluster: keys spread over the nodes' slots.
    pub cluster: bool,
    /// The URL with any password replaced by `***`: for messages and `repr`s.
    pub shown: String,
    /// The password, so that a message quoting the server never repeats it.
    secret: Option<String>,
    /// `scheme://userinfo@` of the nodes, to reach other nodes of a cluster.
    head: String,
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

fn bad(shown: &str) -> Error {
    Error::InvalidConfig {
        param: "url",
        value: format!("{shown:?}"),
        accepted: ACCEPTED,
    }
}

/// `user:password@` → (`user:***@`, the password).
fn hide(userinfo: &str) -> (String, Option<String>) {
    match userinfo.split_once(':') {
        Some((user, pass)) if !pass.is_empty() => (format!("{user}:***"), Some(pass.to_owned())),
        _ => (userinfo.to_owned(), None),
    }
}

impl RedisUrl {
    /// Parses `url`; an unknown scheme or a malformed address is
    /// [`Error::InvalidConfig`] naming `url` (with the password hidden).
    ///
    /// ```
    /// let u = twat_cache::RedisUrl::parse("redis+cluster://app:pw@10.0.0.1:7000,10.0.0.2:7000")?;
    /// assert!(u.cluster);
    /// assert_eq!(u.nodes.len(), 2);
    /// assert_eq!(u.shown, "redis+cluster://app:***@10.0.0.1:7000,10.0.0.2:7000");
    /// # Ok::<(), twat_cache::Error>(())
    /// ```
    pub fn parse(url: &str) -> Result<Self, Error> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad(&first_part(url)))?;
        let (userinfo, hosts) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (shown_user, secret) = userinfo.map_or((String::new(), None), hide);
        let at = if userinfo.is_some() { "@" } else { "" };
        let shown = format!("{scheme}://{shown_user}{at}{hosts}");
        let node_scheme = match scheme {
            "redis+cluster" | "valkey+cluster" => "redis",
            "rediss+cluster" | "valkeys+cluster" => "rediss",
            "redis" | "rediss" | "valkey" | "valkeys" | "unix" | "redis+unix" | "valkey+unix" => {
                let parsed = Self {
                    nodes: vec![url.to_owned()],
                    cluster: false,
                    shown: shown.clone(),
                    secret,
                    head: format!("{scheme}://{}{at}", userinfo.unwrap_or("")),
                };
                // Let the client's own parser judge the rest (host, port, db, socket).
                redis::Client::open(url).map_err(|_| bad(&shown))?;
                return Ok(parsed);
            }
            _ => return Err(bad(&shown)),
        };
        let head = format!("{node_scheme}://{}{at}", userinfo.unwrap_or(""));
        let nodes: Vec<String> = hosts
            .trim_end_matches('/')
            .split(',')
            .map(|h| format!("{head}{}", h.trim()))
            .collect();
        if nodes
            .iter()
            .any(|n| redis::Client::open(n.as_str()).is_err())
            || hosts.is_empty()
        {
            return Err(bad(&shown));
        }
        Ok(Self {
            nodes,
            cluster: true,
            shown,
            secret,
            head,
        })
    }

    /// Whether connections use TLS (`rediss://`, `valkeys://` and their cluster forms).
    pub fn tls(&self) -> bool {
        self.head.starts_with("rediss") || self.head.starts_with("valkeys")
    }

    /// The URL of another node of the same cluster (same scheme and credentials).
    pub(crate) fn node(&self, host: &str, port: u16) -> String {
        if host.contains(':') {
            format!("{}[{host}]:{port}", self.head)
        } else {
            format!("{}{host}:{port}", self.head)
        }
    }

    /// `message` with the password, if it appears, replaced by `***`.
    pub(crate) fn scrub(&self, message: String) -> String {
        match &self.secret {
            Some(s) if message.contains(s.as_str()) => message.replace(s.as_str(), "***"),
            _ => message,
        }
    }
}

/// What can be shown of a string that is not a URL at all: nothing after an `@`.
fn first_part(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_server_keeps_its_url_and_hides_the_password() {
        let u = RedisUrl::parse("redis://:s3cret@127.0.0.1:6380/2").unwrap();
        assert!(!u.cluster);
        assert_eq!(u.nodes, vec!["redis://:s3cret@127.0.0.1:6380/2".to_owned()]);
        assert_eq!(u.shown, "redis://:***@127.0.0.1:6380/2");
        assert_eq!(u.scrub("auth s3cret failed".into()), "auth *** failed");
    }

    #[test]
    fn unix_sockets_and_tls_are_accepted() {
        assert!(!RedisUrl::parse("unix:///tmp/valkey.sock").unwrap().tls());
        assert!(RedisUrl::parse("rediss://127.0.0.1:6379").unwrap().tls());
        assert!(RedisUrl::parse("valkeys://127.0.0.1:6379").unwrap().tls());
        assert!(RedisUrl::parse("rediss+cluster://127.0.0.1:7000")
            .unwrap()
            .tls());
        assert!(!RedisUrl::parse("redis://127.0.0.1:6379").unwrap().tls());
    }

    #[test]
    fn a_cluster_url_lists_its_nodes() {
        let u = RedisUrl::parse("redis+cluster://127.0.0.1:7000, 127.0.0.1:7001").unwrap();
        assert!(u.cluster);
        assert_eq!(
            u.nodes,
            vec!["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
        );
        assert_eq!(u.node("127.0.0.1", 7002), "redis://127.0.0.1:7002");
    }

    #[test]
    fn bad_urls_name_the_parameter_without_the_password() {
        for url in [
            "http://u:pw@host:1",
            "127.0.0.1:6379",
            "redis+cluster://",
            "redis://u:pw@host:notaport",
        ] {
            let e = RedisUrl::parse(url).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("url"), "{text}");
            assert!(!text.contains("pw"), "{text}");
        }
    }
}
