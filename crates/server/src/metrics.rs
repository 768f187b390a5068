//! Prometheus metrics for `/metrics`: requests by type and errorCode, and a latency histogram.
//!
//! The recorder belongs to the application instance (not the process-global recorder), so several
//! servers in one process (as in the tests) keep separate counts.

use metrics::{Counter, Histogram, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// The request counter and the front door's latency histogram, registered once per (front door,
    /// type, errorCode), so counting a request is one map lookup and two atomic updates.
    handles: RwLock<HashMap<RequestKey, (Counter, Histogram)>>,
    /// RADIUS datagrams by outcome, and the evaluation time of answered ones.
    radius_handles: RwLock<HashMap<&'static str, (Counter, Histogram)>>,
}

/// Front door, type, errorCode.
type RequestKey = (&'static str, &'static str, i64);

const BUCKETS: &[f64] = &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

impl Metrics {
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets(BUCKETS) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        Metrics { recorder, handle, handles: RwLock::default(), radius_handles: RwLock::default() }
    }

    /// Counts one request of the API (`front` is "json" or "soap").
    pub fn request(&self, front: &'static str, op: &'static str, code: i64, elapsed: Duration) {
        let key = (front, op, code);
        let known = self.handles.read().ok().and_then(|m| m.get(&key).cloned());
        let (counter, histogram) = known.unwrap_or_else(|| {
            let handles = metrics::with_local_recorder(&self.recorder as &dyn Recorder, || {
                (
                    metrics::counter!("tessera_requests_total", "front" => front, "type" => op, "code" => code.to_string()),
                    metrics::histogram!("tessera_request_duration_seconds", "front" => front),
                )
            });
            if let Ok(mut m) = self.handles.write() {
                m.insert(key, handles.clone());
            }
            handles
        });
        counter.increment(1);
        histogram.record(elapsed.as_secs_f64());
    }

    /// Counts one RADIUS datagram by outcome (`accept`, `reject`, `challenge`, `retransmit`,
    /// `retransmit_in_progress`, `dropped_malformed`, `dropped_unsupported`, `dropped_unknown_client`,
    /// `dropped_bad_authenticator`, `dropped_busy`), with the evaluation time when there was one.
    pub fn radius(&self, outcome: &'static str, elapsed: Option<Duration>) {
        let known = self.radius_handles.read().ok().and_then(|m| m.get(outcome).cloned());
        let (counter, histogram) = known.unwrap_or_else(|| {
            let handles = metrics::with_local_recorder(&self.recorder as &dyn Recorder, || {
                (
                    metrics::counter!("tessera_radius_requests_total", "outcome" => outcome),
                    metrics::histogram!("tessera_radius_duration_seconds"),
                )
            });
            if let Ok(mut m) = self.radius_handles.write() {
                m.insert(outcome, handles.clone());
            }
            handles
        });
        counter.increment(1);
        if let Some(e) = elapsed {
            histogram.record(e.as_secs_f64());
        }
    }

    pub fn render(&self) -> String {
        self.handle.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
