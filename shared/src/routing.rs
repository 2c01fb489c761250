//! The transfer's view of the collect configuration: which topics to consume, which index
//! each topic's documents go to, whether their lines are decoded as JSON, which processors
//! run on them. The transfer replaces it as a whole on every change; `logctl pipeline test`
//! builds the same one.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::collect::{CollectEntry, DataStream};
use crate::document;
use crate::pipeline::Pipeline;

/// `[transfer] index_pattern` by default: one index per topic and day.
pub const DEFAULT_INDEX_PATTERN: &str = "{topic}-%Y.%m.%d";

#[derive(Debug, Clone, PartialEq, Eq)]
struct TopicRoute {
    json: bool,
    index: Option<String>,
    data_stream: Option<DataStream>,
    /// Each entry's processors, by the entry's `path` (the record header `entry`).
    pipelines: Vec<(String, Pipeline)>,
}

/// Topics and where their documents go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// Topics to consume, sorted, without duplicates.
    pub topics: Vec<String>,
    /// Looked up for every record: Fx, not SipHash (SipHash was 3% of rendering one).
    routes: FxHashMap<String, TopicRoute>,
    pattern: String,
}

impl Routing {
    /// From the collect entries; `pattern` is `[transfer] index_pattern`. Several entries may
    /// share a topic: JSON decoding is on if any asks for it; the first `index` or
    /// `data_stream` given wins.
    pub fn new(entries: &[CollectEntry], pattern: &str) -> Routing {
        let mut routes: FxHashMap<String, TopicRoute> = FxHashMap::default();
        for e in entries {
            let r = routes.entry(e.topic.clone()).or_insert(TopicRoute {
                json: false,
                index: None,
                data_stream: None,
                pipelines: Vec::new(),
            });
            r.json |= e.json;
            r.pipelines.push((e.path.clone(), e.processors.clone()));
            if r.index.is_none() && r.data_stream.is_none() {
                r.index = e.index.clone();
                r.data_stream = e.data_stream.clone();
            }
        }
        let mut topics: Vec<String> = routes.keys().cloned().collect();
        topics.sort();
        Routing {
            topics,
            routes,
            pattern: pattern.to_string(),
        }
    }

    /// What is configured for the records of `topic`: looked up once per record, asked
    /// several things.
    pub fn route<'a>(&'a self, topic: &'a str) -> Route<'a> {
        Route {
            topic,
            route: self.routes.get(topic),
            pattern: &self.pattern,
        }
    }

    /// The data streams this routing writes to, sorted, for their index template.
    pub fn data_streams(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .topics
            .iter()
            .filter_map(|t| self.route(t).data_stream().map(|s| s.name().to_string()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Index patterns covering every index (not data stream) this routing writes to, for the
    /// index template: each topic's index up to its first date field, then `*`.
    pub fn template_patterns(&self) -> Vec<String> {
        let mut patterns: Vec<String> = self
            .topics
            .iter()
            .map(|t| self.route(t))
            .filter(|r| r.data_stream().is_none())
            .map(|r| {
                let p = r.pattern().replace("{topic}", r.topic);
                let prefix = p.split('%').next().unwrap_or("");
                format!("{}*", document::sanitize_index(prefix))
            })
            .collect();
        patterns.sort();
        patterns.dedup();
        patterns
    }
}

/// What is configured for the records of one topic ([`Routing::route`]); a topic not
/// configured (e.g. just removed) has the defaults.
#[derive(Clone, Copy)]
pub struct Route<'a> {
    topic: &'a str,
    route: Option<&'a TopicRoute>,
    /// `[transfer] index_pattern`.
    pattern: &'a str,
}

impl<'a> Route<'a> {
    /// The index pattern of the topic.
    fn pattern(&self) -> &'a str {
        self.route
            .and_then(|r| r.index.as_deref())
            .unwrap_or(self.pattern)
    }

    /// The index (or data stream) of a record of the topic at `timestamp_ms`.
    pub fn index(&self, timestamp_ms: i64) -> Arc<str> {
        match self.data_stream() {
            Some(stream) => stream.name(),
            None => document::index_name(self.pattern(), self.topic, timestamp_ms),
        }
    }

    /// The data stream the topic's documents go to, if any.
    pub fn data_stream(&self) -> Option<&'a DataStream> {
        self.route?.data_stream.as_ref()
    }

    /// The processors for a record from the collect entry `entry` (its header); without the
    /// header (an older agent, another producer), those of the topic's only entry.
    pub fn pipeline(&self, entry: Option<&str>) -> Option<&'a Pipeline> {
        let pipelines = &self.route?.pipelines;
        let found = match entry {
            Some(path) => pipelines.iter().find(|(p, _)| p == path),
            None if pipelines.len() == 1 => pipelines.first(),
            None => None,
        };
        found.map(|(_, p)| p).filter(|p| !p.is_empty())
    }

    /// Whether lines of the topic that are JSON objects are decoded.
    pub fn decode_json(&self) -> bool {
        self.route.is_some_and(|r| r.json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::parse_collect_conf;

    #[test]
    fn routes_and_patterns() {
        let entries = parse_collect_conf(
            "k",
            br#"[{"path":"/a","topic":"web"},{"path":"/b","topic":"web","json":true},
                {"path":"/c","topic":"app","index":"app-logs"}]"#,
        )
        .unwrap();
        let r = Routing::new(&entries, "{topic}-%Y.%m.%d");
        assert_eq!(r.topics, ["app", "web"]);
        assert!(r.route("web").decode_json() && !r.route("app").decode_json());
        assert_eq!(&*r.route("web").index(0), "web-1970.01.01");
        assert_eq!(&*r.route("app").index(0), "app-logs");
        assert_eq!(&*r.route("gone").index(0), "gone-1970.01.01");
        assert_eq!(r.template_patterns(), ["app-logs*", "web-*"]);
        assert!(r.data_streams().is_empty());
    }

    #[test]
    fn data_streams() {
        let entries = parse_collect_conf(
            "k",
            br#"[{"path":"/a","topic":"web","data_stream":{"dataset":"nginx.access","namespace":"prod"}},
                {"path":"/b","topic":"web","index":"ignored"},
                {"path":"/c","topic":"app","data_stream":{"dataset":"app"}},
                {"path":"/d","topic":"other"}]"#,
        )
        .unwrap();
        let r = Routing::new(&entries, "{topic}-%Y.%m.%d");
        assert_eq!(&*r.route("web").index(0), "logs-nginx.access-prod");
        assert_eq!(&*r.route("app").index(0), "logs-app-default");
        assert_eq!(
            r.data_streams(),
            ["logs-app-default", "logs-nginx.access-prod"]
        );
        assert_eq!(r.template_patterns(), ["other-*"]);
    }
}
