//! Prometheus metrics: one registry per process, filled by every component at start-up and
//! rendered at `/metrics` in the OpenMetrics text format (which Prometheus scrapes natively).
//!
//! Labels are low-cardinality by rule (route, method, status, adapter, outcome); phone numbers,
//! names and call ids never become labels.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The content type of the `/metrics` body.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

/// The process's metric registry plus the metrics the HTTP layer itself updates.
pub struct Metrics {
    registry: Mutex<Registry>,
    http_requests: Family<HttpLabels, Counter>,
    read_on_scrape: Arc<ReadOnScrape>,
}

/// A value another component keeps itself (an atomic, a queue length) and that is read at
/// scrape time, so the hot path never touches the registry.
pub type ReadValue = Box<dyn Fn() -> u64 + Send + Sync>;

#[derive(Default)]
struct ReadOnScrape {
    metrics: Mutex<BTreeMap<String, ScrapedMetric>>,
}

/// One metric name read at scrape time: its help, its type and one reader per label set.
struct ScrapedMetric {
    help: String,
    is_counter: bool,
    series: Vec<(Vec<(String, String)>, ReadValue)>,
}

impl std::fmt::Debug for ReadOnScrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadOnScrape")
    }
}

impl Collector for SharedReadOnScrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metrics = self.0.metrics.lock().unwrap_or_else(|p| p.into_inner());
        for (
            name,
            ScrapedMetric {
                help,
                is_counter,
                series,
            },
        ) in metrics.iter()
        {
            if *is_counter {
                let mut family = encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    ConstCounter::new(0u64).metric_type(),
                )?;
                for (labels, read) in series {
                    ConstCounter::new(read()).encode(family.encode_family(labels)?)?;
                }
            } else {
                let mut family = encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    ConstGauge::new(0i64).metric_type(),
                )?;
                for (labels, read) in series {
                    ConstGauge::new(i64::try_from(read()).unwrap_or(i64::MAX))
                        .encode(family.encode_family(labels)?)?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct SharedReadOnScrape(Arc<ReadOnScrape>);

impl Metrics {
    /// A registry holding the build info and the HTTP request counter.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kommutator");
        registry.register(
            "build",
            "Version of the running binary",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests served, by method, matched route and status",
            http_requests.clone(),
        );
        let read_on_scrape = Arc::new(ReadOnScrape::default());
        registry.register_collector(Box::new(SharedReadOnScrape(read_on_scrape.clone())));
        Self {
            registry: Mutex::new(registry),
            http_requests,
            read_on_scrape,
        }
    }

    /// Registers a counter owned by another component (an adapter, the outbox, the tracker).
    pub fn register_counter(&self, name: &str, help: &str, counter: Counter) {
        self.lock().register(name, help, counter);
    }

    /// Registers a gauge owned by another component.
    pub fn register_gauge(&self, name: &str, help: &str, gauge: Gauge) {
        self.lock().register(name, help, gauge);
    }

    /// Registers a labelled counter family owned by another component.
    pub fn register_counter_family<L>(&self, name: &str, help: &str, family: Family<L, Counter>)
    where
        L: EncodeLabelSet + Clone + std::hash::Hash + Eq + Send + Sync + std::fmt::Debug + 'static,
    {
        self.lock().register(name, help, family);
    }

    /// Adds one labelled series of a counter read at scrape time; `name` gets the registry's
    /// `kommutator_` prefix and, being a counter, the `_total` suffix.
    pub fn counter_fn(&self, name: &str, help: &str, labels: &[(&str, &str)], read: ReadValue) {
        self.add_read_on_scrape(name, help, true, labels, read);
    }

    /// Adds one labelled series of a gauge read at scrape time.
    pub fn gauge_fn(&self, name: &str, help: &str, labels: &[(&str, &str)], read: ReadValue) {
        self.add_read_on_scrape(name, help, false, labels, read);
    }

    fn add_read_on_scrape(
        &self,
        name: &str,
        help: &str,
        is_counter: bool,
        labels: &[(&str, &str)],
        read: ReadValue,
    ) {
        let mut metrics = self
            .read_on_scrape
            .metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let entry = metrics
            .entry(name.to_owned())
            .or_insert_with(|| ScrapedMetric {
                help: help.to_owned(),
                is_counter,
                series: Vec::new(),
            });
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        entry.series.push((labels, read));
    }

    pub(crate) fn http_request(&self, method: &str, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
    }

    /// Renders every registered metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut body = String::new();
        encode(&mut body, &self.lock())?;
        Ok(body)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding this lock can only come from a bug in prometheus-client's
        // encoder; the registry itself stays consistent, so recover the guard.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
