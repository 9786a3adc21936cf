//! Counts by one attribute whose values are known in advance, such as a cache lookup's result.
//! A `Counter`'s `add` copies, sorts and hashes its attributes on every call (about 700
//! instructions under callgrind, three such counts per authorized request); here a count is
//! one atomic add, and the counts are read when metrics are collected (README, "Benchmarks").
//! Every value is reported from the start, at 0 until counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrumentBuilder, ObservableCounter};

pub struct Tally {
    values: &'static [&'static str],
    counts: Arc<[AtomicU64]>,
    _counter: ObservableCounter<u64>,
}

impl Tally {
    /// A counter with attribute `key`, which takes one of `values`.
    pub fn build(
        counter: AsyncInstrumentBuilder<'_, ObservableCounter<u64>, u64>,
        key: &'static str,
        values: &'static [&'static str],
    ) -> Tally {
        let counts: Arc<[AtomicU64]> = values.iter().map(|_| AtomicU64::new(0)).collect();
        let read = Arc::clone(&counts);
        let counter = counter
            .with_callback(move |observer| {
                for (value, count) in values.iter().zip(read.iter()) {
                    observer.observe(count.load(Ordering::Relaxed), &[KeyValue::new(key, *value)]);
                }
            })
            .build();
        Tally { values, counts, _counter: counter }
    }

    /// Counts one `value`, which must be one of those the tally was built with.
    pub fn add(&self, value: &str) {
        match self.values.iter().position(|v| *v == value) {
            Some(i) => {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
            None => debug_assert!(false, "{value} is not a value of this tally"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    #[test]
    fn counts_are_reported_by_value_with_zero_for_values_not_yet_counted() {
        let exporter = InMemoryMetricExporter::default();
        let provider =
            SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
        let tally = Tally::build(provider.meter("t").u64_observable_counter("lookups"), "result", &["hit", "miss"]);
        tally.add("hit");
        tally.add("hit");
        provider.force_flush().unwrap();
        let metrics = exporter.get_finished_metrics().unwrap();
        let metric = metrics.iter().flat_map(|r| r.scope_metrics()).flat_map(|s| s.metrics()).next().unwrap();
        let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() else { panic!("not a u64 sum") };
        assert!(sum.is_monotonic());
        let mut points: Vec<(String, u64)> =
            sum.data_points().map(|p| (p.attributes().next().unwrap().value.to_string(), p.value())).collect();
        points.sort();
        assert_eq!(points, [("hit".to_owned(), 2), ("miss".to_owned(), 0)]);
    }
}
