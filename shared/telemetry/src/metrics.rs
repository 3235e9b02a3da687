//! Prometheus metrics shared by every service of a process, served at `/metrics`.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs … ~13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

pub struct Metrics {
    registry: Mutex<Registry>,
    http_requests: Family<Labels, Counter>,
    http_duration: HistogramFamily,
    app_calls: Family<Labels, Counter>,
    app_duration: HistogramFamily,
    jobs: Family<Labels, Counter>,
    deploys: Family<Labels, Counter>,
    app_events_skipped: Family<Labels, Counter>,
    bus_handler_errors: Family<Labels, Counter>,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("nr");
        let http_requests = Family::<Labels, Counter>::default();
        let http_duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let app_calls = Family::<Labels, Counter>::default();
        let app_duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let jobs = Family::<Labels, Counter>::default();
        let deploys = Family::<Labels, Counter>::default();
        let app_events_skipped = Family::<Labels, Counter>::default();
        let bus_handler_errors = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            http_duration.clone(),
        );
        registry.register(
            "app_calls",
            "Sync calls executed, by app and status",
            app_calls.clone(),
        );
        registry.register(
            "app_call_duration_seconds",
            "Sync call latency in the runner, by app",
            app_duration.clone(),
        );
        registry.register(
            "jobs",
            "Async jobs finished, by app and final status",
            jobs.clone(),
        );
        registry.register("deploys", "Deploy requests by outcome", deploys.clone());
        registry.register(
            "app_events_skipped",
            "Stored app.updated events a service skipped (manifest that does not parse, undecodable payload), by service and reason",
            app_events_skipped.clone(),
        );
        registry.register(
            "bus_handler_errors",
            "Messages whose handler failed or panicked, by consumer",
            bus_handler_errors.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            http_requests,
            http_duration,
            app_calls,
            app_duration,
            jobs,
            deploys,
            app_events_skipped,
            bus_handler_errors,
        }
    })
}

impl Metrics {
    pub fn http(
        &self,
        service: &'static str,
        method: &str,
        route: &str,
        status: u16,
        elapsed: Duration,
    ) {
        self.http_requests
            .get_or_create(&vec![
                ("service", service.to_owned()),
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
        self.http_duration
            .get_or_create(&vec![
                ("service", service.to_owned()),
                ("route", route.to_owned()),
            ])
            .observe(elapsed.as_secs_f64());
    }

    pub fn app_call(&self, app: &str, status: u16, elapsed: Duration) {
        self.app_calls
            .get_or_create(&vec![
                ("app", app.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
        self.app_duration
            .get_or_create(&vec![("app", app.to_owned())])
            .observe(elapsed.as_secs_f64());
    }

    pub fn job(&self, app: &str, status: &str) {
        self.jobs
            .get_or_create(&vec![
                ("app", app.to_owned()),
                ("status", status.to_owned()),
            ])
            .inc();
    }

    pub fn deploy(&self, outcome: &str) {
        self.deploys
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc();
    }

    /// A stored `app.updated` event `service` skipped instead of applying, and why
    /// (`manifest`: its manifest does not parse; `undecodable`: not an event at all).
    pub fn app_event_skipped(&self, service: &'static str, reason: &'static str) {
        self.app_events_skipped
            .get_or_create(&vec![
                ("service", service.to_owned()),
                ("reason", reason.to_owned()),
            ])
            .inc();
    }

    /// A message `consumer` could not handle (its handler failed or panicked).
    pub fn bus_handler_error(&self, consumer: &'static str) {
        self.bus_handler_errors
            .get_or_create(&vec![("consumer", consumer.to_owned())])
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_in_the_exposition() {
        let m = metrics();
        m.app_call("notes", 200, Duration::from_millis(2));
        m.http(
            "gateway",
            "POST",
            "/api/sync/{app}",
            200,
            Duration::from_millis(3),
        );
        let text = m.render();
        assert!(
            text.contains("nr_app_calls_total{app=\"notes\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(text.contains("nr_http_requests_total{service=\"gateway\",method=\"POST\",route=\"/api/sync/{app}\",status=\"200\"}"), "{text}");
        assert!(
            text.contains("nr_app_call_duration_seconds_bucket"),
            "{text}"
        );
    }
}
