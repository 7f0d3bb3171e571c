//! Which link answers a request on a shared address: by Host header, then
//! by the longest path prefix.

use std::sync::Arc;

use trellis_protocol::LinkDefinition;

use crate::settings::Settings;

/// Identifies a link: actor, contract and link name.
pub type LinkKey = String;

/// The key of `link`.
pub fn link_key(link: &LinkDefinition) -> LinkKey {
    trellis_protocol::link::link_bucket_key(&link.actor_id, &link.contract_id, &link.link_name)
}

/// One link served on an address.
#[derive(Debug)]
pub struct Route {
    /// The link it comes from.
    pub key: LinkKey,
    /// The actor requests go to.
    pub actor_id: String,
    /// The link's settings.
    pub settings: Settings,
}

impl Route {
    /// Whether this route answers `path` on `host` (lowercase, without a
    /// port; `None` when the request named no host).
    fn matches(&self, host: Option<&str>, path: &str) -> bool {
        let host_ok = match &self.settings.host {
            None => true,
            Some(wanted) => host == Some(wanted.as_str()),
        };
        host_ok && prefix_matches(&self.settings.path_prefix, path)
    }

    /// Whether this route and `other` answer exactly the same requests.
    pub fn same_scope(&self, other: &Settings) -> bool {
        self.settings.host == other.host && self.settings.path_prefix == other.path_prefix
    }
}

/// Whether `prefix` (normalised: no trailing `/` except `/` itself)
/// matches `path` by whole segments: `/api` matches `/api` and `/api/x`,
/// not `/apix`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The routes of one address, most specific first: routes naming a host
/// before those that do not, then longer path prefixes before shorter
/// ones. The first that matches a request answers it.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// A table of `routes`, sorted by precedence.
    pub fn new(mut routes: Vec<Arc<Route>>) -> Self {
        routes.sort_by(|a, b| {
            let rank = |r: &Route| (r.settings.host.is_some(), r.settings.path_prefix.len());
            rank(b).cmp(&rank(a)).then_with(|| a.key.cmp(&b.key))
        });
        Self { routes }
    }

    /// The route answering `path` on `host`, if any.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.matches(host, path))
    }

    /// Every route.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// Whether there is no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn route(key: &str, host: Option<&str>, prefix: &str) -> Arc<Route> {
        Arc::new(Route {
            key: key.to_owned(),
            actor_id: key.to_owned(),
            settings: Settings {
                host: host.map(str::to_owned),
                path_prefix: prefix.to_owned(),
                ..Settings::default()
            },
        })
    }

    fn answer(table: &RouteTable, host: Option<&str>, path: &str) -> Option<String> {
        table.find(host, path).map(|r| r.key.clone())
    }

    #[test]
    fn the_longest_prefix_wins_by_whole_segments() {
        let table = RouteTable::new(vec![
            route("root", None, "/"),
            route("api", None, "/api"),
            route("v2", None, "/api/v2"),
        ]);
        assert_eq!(answer(&table, None, "/").as_deref(), Some("root"));
        assert_eq!(answer(&table, None, "/api").as_deref(), Some("api"));
        assert_eq!(answer(&table, None, "/api/v1/x").as_deref(), Some("api"));
        assert_eq!(answer(&table, None, "/api/v2/x").as_deref(), Some("v2"));
        assert_eq!(answer(&table, None, "/apix").as_deref(), Some("root"));
    }

    #[test]
    fn a_route_naming_the_host_wins_over_one_that_does_not() {
        let table = RouteTable::new(vec![
            route("any", None, "/api"),
            route("a", Some("a.example"), "/"),
        ]);
        assert_eq!(
            answer(&table, Some("a.example"), "/api").as_deref(),
            Some("a")
        );
        assert_eq!(
            answer(&table, Some("b.example"), "/api").as_deref(),
            Some("any")
        );
        assert_eq!(answer(&table, Some("b.example"), "/"), None);
        assert_eq!(answer(&table, None, "/"), None);
    }
}
